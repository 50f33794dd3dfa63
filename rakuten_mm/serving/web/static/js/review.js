// "Revue": the products the API sent to review, least confident first; confirm one of the top-5 codes,
// choose another of the 27, or skip, by keyboard (1-5, arrows, P, A). Decisions are sent in order in the
// background, so the next product shows at once; the next page of the queue is fetched before it is needed.

import {api, frenchMessage, SessionExpired} from "./api.js";
import {$, el, percent, showMessage} from "./dom.js";

const PAGE_SIZE = 20;
const PREFETCH_WHEN_LEFT = 5;
const DESCRIPTION_CHARS = 600;
const state = {items: [], index: 0, exhausted: false, loading: null, active: false, decided: 0, generation: 0};
let sending = Promise.resolve();

function current() {
  return state.items[state.index] || null;
}

function itemsQuery(after) {
  const params = new URLSearchParams({limit: String(PAGE_SIZE)});
  if ($("review-filter").value) params.set("prdtypecode", $("review-filter").value);
  if (after) {
    params.set("after_probability", String(after.probability));
    params.set("after_id", String(after.id));
  }
  return `/review/items?${params}`;
}

/** Fetch the next page of the queue (once at a time); photos are decoded ahead by the browser. */
function fetchMore() {
  if (state.exhausted || state.loading) return state.loading;
  const generation = state.generation;
  state.loading = api(itemsQuery(state.items.at(-1))).then((page) => {
    if (generation !== state.generation) return;
    state.exhausted = page.length < PAGE_SIZE;
    for (const item of page) {
      if (item.photo) new Image().src = item.photo;  // decoded before the product is shown
      state.items.push({...item, chosen: undefined});
    }
    renderList();
  }).catch(showError).finally(() => {
    state.loading = null;
  });
  return state.loading;
}

function showError(error) {
  if (!(error instanceof SessionExpired)) showMessage($("review-message"), frenchMessage(error, "review"));
}

function chosenText(item) {
  if (item.chosen === undefined) return "";
  return item.chosen === null ? " — passé" : ` — classé ${item.chosen}`;
}

function listEntry(item, position) {
  const button = el("button", {type: "button", class: "review-entry", "aria-current": position === state.index ? "true" : null},
    el("span", {class: "review-entry-title"}, item.designation),
    el("span", {class: "review-entry-facts"}, `${percent(item.probability)} · ${item.category}${chosenText(item)}`));
  button.addEventListener("click", () => show(position));
  return el("li", {class: item.chosen === undefined ? "" : "done"}, button);
}

function renderList() {
  $("review-list").replaceChildren(...state.items.map(listEntry));
  const left = state.items.filter((item) => item.chosen === undefined).length;
  $("review-count").textContent = `${left}${state.exhausted ? "" : "+"} produit(s) à revoir dans cette liste — ${state.decided} décision(s) enregistrée(s)`;
}

function topFiveEntry(entry, position, item) {
  const label = `${entry.category} (${entry.prdtypecode})`;
  const button = el("button", {type: "button", class: entry.prdtypecode === item.prdtypecode ? "choice predicted" : "choice"},
    el("kbd", {}, String(position + 1)), el("span", {class: "top5-label"}, label),
    el("progress", {max: "1", value: String(entry.probability), "aria-label": `${label} : ${percent(entry.probability)}`}),
    el("span", {class: "top5-value"}, percent(entry.probability)));
  button.addEventListener("click", () => choose(entry.prdtypecode));
  return el("li", {}, button);
}

function renderProduct() {
  const item = current();
  $("review-product").hidden = !item;
  if (!item) {
    showMessage($("review-message"), state.items.length ? "Tous les produits de la liste sont revus." : "Aucun produit à revoir.", "info");
    return;
  }
  $("review-product-title").textContent = item.designation;
  const description = item.description || "";
  $("review-description").textContent = description.length > DESCRIPTION_CHARS ? `${description.slice(0, DESCRIPTION_CHARS)}…` : description;
  $("review-photo").hidden = !item.photo;
  if (item.photo) $("review-photo").src = item.photo;
  else $("review-photo").removeAttribute("src");
  const when = new Date(item.received_at).toLocaleString("fr-FR");
  $("review-facts").textContent = `Prédit : ${item.category} (${item.prdtypecode}), confiance ${percent(item.probability)} — modèle ${item.model_version}, reçu le ${when}${chosenText(item)}`;
  $("review-top5").replaceChildren(...item.top5.map((entry, position) => topFiveEntry(entry, position, item)));
  $("review-other").value = String(item.prdtypecode);
}

function show(position) {
  state.index = Math.max(0, Math.min(position, state.items.length));
  renderList();
  renderProduct();
  const entry = $("review-list").children[state.index];
  if (entry) entry.scrollIntoView({block: "nearest"});
  if (state.items.length - state.index <= PREFETCH_WHEN_LEFT) fetchMore();
}

/** Record the decision in the background (in order), then show the next product not yet decided. */
function decide(code) {
  const item = current();
  if (!item) return;
  item.chosen = code;
  state.decided += 1;
  sending = sending.then(() => api(`/review/items/${item.id}/decision`, {
    method: "POST", body: JSON.stringify({prdtypecode: code}), headers: {"Content-Type": "application/json"},
  })).catch(showError);
  let next = state.items.findIndex((other, position) => position > state.index && other.chosen === undefined);
  if (next < 0) next = state.items.length;
  show(next);
}

function choose(code) {
  decide(Number(code));
}

function onKey(event) {
  if (!state.active || event.ctrlKey || event.metaKey || event.altKey) return;
  if (event.target.closest && event.target.closest("input, select, textarea")) return;
  const item = current();
  const key = event.key;
  if (/^[1-5]$/.test(key) && item && item.top5[Number(key) - 1]) choose(item.top5[Number(key) - 1].prdtypecode);
  else if (key === "ArrowDown" || key === "ArrowRight") show(state.index + 1);
  else if (key === "ArrowUp" || key === "ArrowLeft") show(state.index - 1);
  else if (key === "p" || key === "P") decide(null);
  else if (key === "a" || key === "A") $("review-other").focus();
  else return;
  event.preventDefault();
}

async function reload() {
  state.generation += 1;
  Object.assign(state, {items: [], index: 0, exhausted: false, loading: null});
  showMessage($("review-message"), "");
  await fetchMore();
  show(0);
}

export function setupReview() {
  document.addEventListener("keydown", onKey);
  $("review-filter").addEventListener("change", () => {
    $("review-filter").blur();  // the keys work on the list again at once
    reload();
  });
  $("review-other-submit").addEventListener("click", () => choose($("review-other").value));
  $("review-other").addEventListener("keydown", (event) => {
    if (event.key === "Enter") {
      event.preventDefault();
      $("review-other").blur();
      choose($("review-other").value);
    } else if (event.key === "Escape") {
      $("review-other").blur();
    }
  });
  $("review-skip").addEventListener("click", () => decide(null));
  return {
    setActive(active) {
      const opened = active && !state.active;
      state.active = active;
      if (opened) reload();
    },
  };
}
