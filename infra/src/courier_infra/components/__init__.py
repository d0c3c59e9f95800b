"""One ComponentResource per capability; `courier_infra.stack` wires them together."""
