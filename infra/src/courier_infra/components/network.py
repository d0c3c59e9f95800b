"""Network: a VPC with public and private subnets in two AZs, NAT egress, optional interface endpoints.

Private subnets hold the database and the VPC Lambdas. Their internet egress (Bedrock without an
endpoint, the public WebSocket API's @connections, JWKS) goes through NAT: one gateway in dev,
one per AZ in prod. There is never an execute-api endpoint: with private DNS it captures the
public API's hostname and @connections calls fail with 403.
"""

from __future__ import annotations

import ipaddress

import pulumi
import pulumi_aws as aws

from courier_infra.config import StackConfig

AZ_COUNT = 2


class Network(pulumi.ComponentResource):
    def __init__(self, name: str, config: StackConfig, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("courier:network:Network", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        tags = {"courier:stage": config.stage}

        zones = aws.get_availability_zones_output(state="available")
        cidr = ipaddress.ip_network(config.vpc_cidr)
        subnets = list(cidr.subnets(new_prefix=min(cidr.prefixlen + 4, 28)))

        self.vpc = aws.ec2.Vpc(
            name,
            cidr_block=config.vpc_cidr,
            enable_dns_hostnames=True,  # interface endpoints with private DNS need both
            enable_dns_support=True,
            tags={**tags, "Name": f"courier-{config.stage}"},
            opts=child,
        )
        internet_gateway = aws.ec2.InternetGateway(f"{name}-igw", vpc_id=self.vpc.id, tags=tags, opts=child)
        public_routes = aws.ec2.RouteTable(
            f"{name}-public",
            vpc_id=self.vpc.id,
            routes=[{"cidr_block": "0.0.0.0/0", "gateway_id": internet_gateway.id}],
            tags=tags,
            opts=child,
        )

        self.public_subnets: list[aws.ec2.Subnet] = []
        self.private_subnets: list[aws.ec2.Subnet] = []
        for index in range(AZ_COUNT):
            zone = zones.names[index]
            public = aws.ec2.Subnet(
                f"{name}-public-{index}",
                vpc_id=self.vpc.id,
                cidr_block=str(subnets[index]),
                availability_zone=zone,
                map_public_ip_on_launch=False,
                tags={**tags, "Name": f"courier-{config.stage}-public-{index}"},
                opts=child,
            )
            aws.ec2.RouteTableAssociation(
                f"{name}-public-{index}", subnet_id=public.id, route_table_id=public_routes.id, opts=child
            )
            private = aws.ec2.Subnet(
                f"{name}-private-{index}",
                vpc_id=self.vpc.id,
                cidr_block=str(subnets[AZ_COUNT + index]),
                availability_zone=zone,
                tags={**tags, "Name": f"courier-{config.stage}-private-{index}"},
                opts=child,
            )
            self.public_subnets.append(public)
            self.private_subnets.append(private)

        self.nat_gateways: list[aws.ec2.NatGateway] = []
        for index in range(config.nat_gateways):
            address = aws.ec2.Eip(f"{name}-nat-{index}", domain="vpc", tags=tags, opts=child)
            self.nat_gateways.append(
                aws.ec2.NatGateway(
                    f"{name}-nat-{index}",
                    allocation_id=address.id,
                    subnet_id=self.public_subnets[index].id,
                    tags=tags,
                    opts=pulumi.ResourceOptions(parent=self, depends_on=[internet_gateway]),
                )
            )
        for index, private in enumerate(self.private_subnets):
            # With one NAT (dev) both AZs share it; with two (prod) each AZ egresses through its own.
            nat = self.nat_gateways[index % len(self.nat_gateways)]
            routes = aws.ec2.RouteTable(
                f"{name}-private-{index}",
                vpc_id=self.vpc.id,
                routes=[{"cidr_block": "0.0.0.0/0", "nat_gateway_id": nat.id}],
                tags=tags,
                opts=child,
            )
            aws.ec2.RouteTableAssociation(
                f"{name}-private-{index}", subnet_id=private.id, route_table_id=routes.id, opts=child
            )

        # Lambdas in the VPC: HTTPS out (NAT or endpoints); Postgres only to the database group.
        self.lambda_security_group = aws.ec2.SecurityGroup(
            f"{name}-lambda",
            vpc_id=self.vpc.id,
            description="Courier Lambdas in the VPC",
            tags=tags,
            opts=child,
        )
        self.database_security_group = aws.ec2.SecurityGroup(
            f"{name}-database",
            vpc_id=self.vpc.id,
            description="Courier database: Postgres from the Lambdas only",
            tags=tags,
            opts=child,
        )
        aws.vpc.SecurityGroupEgressRule(
            f"{name}-lambda-https",
            security_group_id=self.lambda_security_group.id,
            ip_protocol="tcp",
            from_port=443,
            to_port=443,
            cidr_ipv4="0.0.0.0/0",
            description="HTTPS to AWS APIs and the identity provider",
            opts=child,
        )
        aws.vpc.SecurityGroupEgressRule(
            f"{name}-lambda-postgres",
            security_group_id=self.lambda_security_group.id,
            ip_protocol="tcp",
            from_port=5432,
            to_port=5432,
            referenced_security_group_id=self.database_security_group.id,
            description="Postgres",
            opts=child,
        )
        aws.vpc.SecurityGroupIngressRule(
            f"{name}-database-postgres",
            security_group_id=self.database_security_group.id,
            ip_protocol="tcp",
            from_port=5432,
            to_port=5432,
            referenced_security_group_id=self.lambda_security_group.id,
            description="Postgres from the Lambdas",
            opts=child,
        )

        # RDS Proxy (optional) gets its own group: Postgres in from the Lambdas, out to the database.
        # The database group has no egress and admits nothing from itself, so the proxy can't share it.
        self.proxy_security_group: aws.ec2.SecurityGroup | None = None
        if config.rds_proxy:
            proxy = aws.ec2.SecurityGroup(
                f"{name}-proxy",
                vpc_id=self.vpc.id,
                description="Courier RDS Proxy: Postgres from the Lambdas, to the database",
                tags=tags,
                opts=child,
            )
            self.proxy_security_group = proxy
            for rule, (kind, group, peer, description) in {
                "lambda-proxy": ("egress", self.lambda_security_group, proxy, "Postgres to RDS Proxy"),
                "proxy-lambda": ("ingress", proxy, self.lambda_security_group, "Postgres from the Lambdas"),
                "proxy-database": ("egress", proxy, self.database_security_group, "Postgres to the database"),
                "database-proxy": ("ingress", self.database_security_group, proxy, "Postgres from RDS Proxy"),
            }.items():
                rule_type = (
                    aws.vpc.SecurityGroupEgressRule if kind == "egress" else aws.vpc.SecurityGroupIngressRule
                )
                rule_type(
                    f"{name}-{rule}",
                    security_group_id=group.id,
                    ip_protocol="tcp",
                    from_port=5432,
                    to_port=5432,
                    referenced_security_group_id=peer.id,
                    description=description,
                    opts=child,
                )

        self.endpoints: dict[str, aws.ec2.VpcEndpoint] = {}
        if config.interface_endpoints:
            endpoint_group = aws.ec2.SecurityGroup(
                f"{name}-endpoints",
                vpc_id=self.vpc.id,
                description="Courier interface endpoints: HTTPS from the Lambdas",
                tags=tags,
                opts=child,
            )
            aws.vpc.SecurityGroupIngressRule(
                f"{name}-endpoints-https",
                security_group_id=endpoint_group.id,
                ip_protocol="tcp",
                from_port=443,
                to_port=443,
                referenced_security_group_id=self.lambda_security_group.id,
                description="HTTPS from the Lambdas",
                opts=child,
            )
            for service in config.interface_endpoints:
                self.endpoints[service] = aws.ec2.VpcEndpoint(
                    f"{name}-{service}",
                    vpc_id=self.vpc.id,
                    service_name=f"com.amazonaws.{config.region}.{service}",
                    vpc_endpoint_type="Interface",
                    private_dns_enabled=True,
                    subnet_ids=[subnet.id for subnet in self.private_subnets],
                    security_group_ids=[endpoint_group.id],
                    tags=tags,
                    opts=child,
                )

        self.private_subnet_ids = [subnet.id for subnet in self.private_subnets]
        self.register_outputs({"vpcId": self.vpc.id, "privateSubnetIds": self.private_subnet_ids})
