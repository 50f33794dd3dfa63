// Entry point: sign-in, navigation between the four sections, session expiry.

import {api, clearToken, frenchMessage, hasToken, onSessionExpired, SessionExpired, signIn, tokenLifetimeLeft, expireSession} from "./api.js";
import {$, showMessage} from "./dom.js";
import {setupClassify} from "./classify.js";
import {setupBatch} from "./batch.js";
import {setupStatus} from "./status.js";
import {setupReview} from "./review.js";

const SECTIONS = ["classify", "batch", "review", "status"];
const EXPIRED_MESSAGE = "Votre session a expiré : reconnectez-vous pour continuer.";
const limits = {
  maxUploadBytes: Number($("main").dataset.maxUploadBytes),
  batchRows: Number($("main").dataset.batchRows),
};
let expiryTimer = null;
let formPainted = false;
const status = setupStatus(limits);
const review = setupReview();

function showSection(name) {
  $("sign-in").hidden = name !== "sign-in";
  for (const section of SECTIONS) $(section).hidden = section !== name;
  for (const button of document.querySelectorAll("#tabs button")) {
    if (button.dataset.section === name) button.setAttribute("aria-current", "page");
    else button.removeAttribute("aria-current");
  }
  if (name === "classify" && !formPainted) {
    formPainted = true;
    // The benchmark reads this mark: the classify form is on screen from the next frame on.
    requestAnimationFrame(() => requestAnimationFrame(() => performance.mark("classify-form-painted")));
  }
  if (name === "status") status.load();
  review.setActive(name === "review");
}

function showSignIn(message = "", kind = "info") {
  window.clearTimeout(expiryTimer);
  $("tabs").hidden = true;
  $("account").hidden = true;
  showMessage($("sign-in-message"), message, kind);
  showSection("sign-in");
  $("username").focus();
}

function scheduleExpiry() {
  window.clearTimeout(expiryTimer);
  const left = tokenLifetimeLeft();
  if (left !== null) expiryTimer = window.setTimeout(expireSession, Math.max(0, left));
}

async function enterConsole() {
  const me = await api("/me");
  $("account-name").textContent = `Connecté : ${me.username}${me.admin ? " (administrateur)" : ""}`;
  $("account").hidden = false;
  $("tabs").hidden = false;
  status.setAdmin(me.admin);
  scheduleExpiry();
  showSection("classify");
}

async function onSignIn(event) {
  event.preventDefault();
  const button = $("sign-in-submit");
  button.disabled = true;
  try {
    await signIn($("username").value, $("password").value);
    $("password").value = "";
    await enterConsole();
  } catch (error) {
    showMessage($("sign-in-message"), frenchMessage(error, "sign-in"));
  } finally {
    button.disabled = false;
  }
}

function start() {
  onSessionExpired(() => showSignIn(EXPIRED_MESSAGE, "error"));
  $("sign-in-form").addEventListener("submit", onSignIn);
  $("sign-out").addEventListener("click", () => {
    clearToken();
    showSignIn("Vous êtes déconnecté.");
  });
  for (const button of document.querySelectorAll("#tabs button")) {
    button.addEventListener("click", () => showSection(button.dataset.section));
  }
  setupClassify(limits);
  setupBatch(limits);
  if (!hasToken()) {
    showSignIn();
    return;
  }
  enterConsole().catch((error) => {
    if (!(error instanceof SessionExpired)) showSignIn(frenchMessage(error, "sign-in"), "error");
  });
}

start();
