// The JSON API seen from the console: the bearer token (memory + sessionStorage, never a cookie or a
// URL), requests, and the French messages for the API's errors.

const TOKEN_KEY = "rakuten-console-token";
const EXPIRY_KEY = "rakuten-console-token-expiry";
let token = sessionStorage.getItem(TOKEN_KEY);
const expiredListeners = [];

export class ApiError extends Error {
  constructor(status, detail, retryAfter = null) {
    super(typeof detail === "string" ? detail : JSON.stringify(detail));
    this.status = status;
    this.detail = detail;
    this.retryAfter = retryAfter;
  }
}

/** The token was refused (expired, tampered with, user removed): the console goes back to sign-in. */
export class SessionExpired extends Error {}

export function hasToken() {
  return Boolean(token);
}

/** Milliseconds until the stored token expires (null when unknown). */
export function tokenLifetimeLeft() {
  const expiry = Number(sessionStorage.getItem(EXPIRY_KEY));
  return expiry ? expiry - Date.now() : null;
}

export function clearToken() {
  token = null;
  sessionStorage.removeItem(TOKEN_KEY);
  sessionStorage.removeItem(EXPIRY_KEY);
}

export function onSessionExpired(listener) {
  expiredListeners.push(listener);
}

export function expireSession() {
  clearToken();
  expiredListeners.forEach((listener) => listener());
}

async function readBody(response) {
  const text = await response.text();
  try {
    return text ? JSON.parse(text) : null;
  } catch {
    return text;
  }
}

/** One API call with the bearer token; ApiError for an error answer, SessionExpired for a refused token. */
export async function api(path, {method = "GET", body = undefined, headers = {}, auth = true} = {}) {
  const allHeaders = new Headers(headers);
  if (auth && token) allHeaders.set("Authorization", `Bearer ${token}`);
  let response;
  try {
    response = await fetch(path, {method, body, headers: allHeaders, credentials: "omit", cache: "no-store"});
  } catch (error) {
    throw new ApiError(0, String(error));
  }
  const data = await readBody(response);
  if (response.status === 401 && auth) {
    expireSession();
    throw new SessionExpired();
  }
  if (!response.ok) {
    const detail = data && typeof data === "object" && "detail" in data ? data.detail : data;
    throw new ApiError(response.status, detail, response.headers.get("Retry-After"));
  }
  return data;
}

/** POST /token with the OAuth2 password form; keeps the token for the tab's lifetime. */
export async function signIn(username, password) {
  const body = new URLSearchParams({username, password});
  const answer = await api("/token", {method: "POST", body, auth: false});
  token = answer.access_token;
  sessionStorage.setItem(TOKEN_KEY, token);
  sessionStorage.setItem(EXPIRY_KEY, String(Date.now() + answer.expires_in * 1000));
  return answer;
}

function megabytes(bytes) {
  return (bytes / (1024 * 1024)).toLocaleString("fr-FR", {maximumFractionDigits: 1});
}

/** "row 3: ..." in a batch error names the product; the number is within the request. */
export function errorRow(detail) {
  const match = typeof detail === "string" ? /^row (\d+):/.exec(detail) : null;
  return match ? Number(match[1]) : null;
}

function validationMessage(detail) {
  const fields = detail.map((item) => (item.loc || []).at(-1));
  if (fields.includes("designation")) return "Le titre du produit est obligatoire et doit faire au plus 1 000 caractères.";
  if (fields.includes("description")) return "La description est trop longue.";
  return "Un champ du formulaire est invalide.";
}

function unprocessableMessage(detail, context) {
  if (Array.isArray(detail)) return validationMessage(detail);
  const text = String(detail || "");
  if (/CSV/.test(text)) return "Le fichier n'est pas un CSV au format X_test_update.csv (colonne d'index sans nom, designation, description, productid, imageid).";
  if (/batch holds no product/.test(text)) return "Le fichier ne contient aucun produit.";
  if (context === "product" || /image|base64|row \d+/.test(text)) return "La photo est illisible ou corrompue : choisissez un autre fichier (JPEG, PNG ou WebP).";
  return `Requête refusée : ${text}`;
}

/** A readable French message for an error of the API (context: sign-in, product, batch or rollout). */
export function frenchMessage(error, context, limits = {}) {
  if (!(error instanceof ApiError)) return `Erreur inattendue : ${error.message || error}`;
  const detail = error.detail;
  const text = typeof detail === "string" ? detail : "";
  switch (error.status) {
    case 0:
      return "Le service est injoignable : vérifiez la connexion puis réessayez.";
    case 401:
      return "Nom d'utilisateur ou mot de passe incorrect.";
    case 403:
      return "Cette action est réservée aux administrateurs.";
    case 409:
      if (/no candidate/.test(text)) return "Action refusée : il n'y a pas de candidat à promouvoir.";
      if (/no previous/.test(text)) return "Action refusée : il n'y a pas de modèle précédent vers lequel revenir.";
      return "Action refusée : les nouveaux modèles n'ont pas pu être chargés ; le modèle en service reste inchangé.";
    case 413:
      if (/pixels/.test(text)) return "La photo est trop grande (trop de pixels) : réduisez ses dimensions.";
      if (/batch of/.test(text)) return "Trop de produits dans un seul envoi.";
      return limits.maxUploadBytes
        ? `Le fichier est trop volumineux : une photo ne doit pas dépasser ${megabytes(limits.maxUploadBytes)} Mo.`
        : "Le fichier est trop volumineux.";
    case 415:
      return "Format de photo non pris en charge : choisissez une image JPEG, PNG ou WebP.";
    case 422:
      return unprocessableMessage(detail, context);
    case 429: {
      const seconds = Number(error.retryAfter) || 60;
      const what = context === "sign-in" ? "Trop de tentatives de connexion" : "Trop de requêtes";
      return `${what} : réessayez dans ${seconds} s.`;
    }
    case 503:
      return "Les modèles sont en cours de chargement : réessayez dans quelques secondes.";
    default:
      return `Le service a rencontré une erreur (code ${error.status}) : réessayez plus tard.`;
  }
}
