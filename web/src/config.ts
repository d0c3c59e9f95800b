// What the page needs to know about the stack it talks to, from `config.json` beside the page:
// `courier dev` serves it; for a deployed stack docs/deploy.md writes it from the stack outputs.
export interface PageConfig {
  wsUrl: string;
  /** The local stack mints dev tokens at `dev/token`; a deployed stack never does. */
  devTokens: boolean;
  /** The protocol's limit (docs/protocol.md): a message this long fits one frame in any encoding. */
  maxMessageChars: number;
  /** Sign-in with a Cognito user (USER_PASSWORD_AUTH), as `courier login` does. */
  cognito?: { region: string; clientId: string };
}

const DEFAULT_MAX_MESSAGE_CHARS = 5000;

export async function loadConfig(): Promise<PageConfig> {
  let served: Partial<PageConfig> = {};
  try {
    const response = await fetch('config.json', { cache: 'no-store' });
    if (response.ok) served = await response.json();
  } catch {
    // No config.json: the page is served beside the WebSocket endpoint.
  }
  const fromQuery = new URLSearchParams(location.search).get('ws');
  const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
  return {
    wsUrl: fromQuery || served.wsUrl || `${scheme}://${location.host}/`,
    devTokens: Boolean(served.devTokens),
    maxMessageChars: served.maxMessageChars ?? DEFAULT_MAX_MESSAGE_CHARS,
    cognito: served.cognito,
  };
}
