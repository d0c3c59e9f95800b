// The signed-in user's token. The page never verifies it (Courier's authorizer does); it reads the
// claims only to show who is signed in and to return to sign-in when the token expires.
import type { PageConfig } from './config';

const TOKEN_KEY = 'courier.token';

export interface Claims {
  sub?: string;
  exp?: number;
}

export function savedToken(): string | null {
  return localStorage.getItem(TOKEN_KEY);
}

export function saveToken(token: string | null): void {
  if (token) localStorage.setItem(TOKEN_KEY, token);
  else localStorage.removeItem(TOKEN_KEY);
}

export function claimsOf(token: string): Claims {
  try {
    const payload = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    return JSON.parse(decodeURIComponent(escape(atob(payload))));
  } catch {
    return {};
  }
}

/** Milliseconds until the token expires (negative once it has), or null when it does not say. */
export function msUntilExpiry(token: string, now = Date.now()): number | null {
  const { exp } = claimsOf(token);
  return typeof exp === 'number' ? exp * 1000 - now : null;
}

export async function devToken(user: string, tenant: string): Promise<string> {
  const query = new URLSearchParams({ user, tenant });
  const response = await fetch(`dev/token?${query}`);
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.message ?? `the local stack answered HTTP ${response.status}`);
  return body.token;
}

/** A Cognito user's ID token (InitiateAuth, USER_PASSWORD_AUTH: unsigned, no AWS credentials). */
export async function cognitoToken(
  cognito: NonNullable<PageConfig['cognito']>,
  username: string,
  password: string,
): Promise<string> {
  const response = await fetch(`https://cognito-idp.${cognito.region}.amazonaws.com/`, {
    method: 'POST',
    headers: {
      'Content-Type': 'application/x-amz-json-1.1',
      'X-Amz-Target': 'AWSCognitoIdentityProviderService.InitiateAuth',
    },
    body: JSON.stringify({
      AuthFlow: 'USER_PASSWORD_AUTH',
      ClientId: cognito.clientId,
      AuthParameters: { USERNAME: username, PASSWORD: password },
    }),
  });
  const body = await response.json().catch(() => ({}));
  const token = body.AuthenticationResult?.IdToken;
  if (!response.ok || !token) {
    if (body.ChallengeName) throw new Error(`Cognito asks for ${body.ChallengeName}: finish it with \`courier login\` first.`);
    throw new Error(body.message ?? `Cognito answered HTTP ${response.status}`);
  }
  return token;
}
