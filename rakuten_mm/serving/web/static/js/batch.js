// "Classer un fichier": a CSV in the X_test_update.csv layout (and optionally a zip of its photos),
// sent to /predict/batch in chunks with a progress bar; a paginated, filterable table; the submission CSV.

import {api, ApiError, errorRow, frenchMessage, SessionExpired} from "./api.js";
import {CsvError, readProducts, submissionCsv} from "./csv.js";
import {$, el, percent, showMessage} from "./dom.js";
import {readEntry, readZipIndex, ZipError} from "./zip.js";

const PAGE_SIZE = 20;
const MAX_RATE_LIMIT_WAITS = 20;
// The API's decision for each product: filed with the predicted code, or sent to the review queue.
const DECISIONS = {auto: "Classé automatiquement", review: "À revoir"};
const state = {results: [], decisions: {auto: 0, review: 0}, page: 0};

function imageName(product) {
  return `image_${product.imageid}_product_${product.productid}.jpg`;
}

function dataUrl(blob) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(blob);
  });
}

/** The JSON items of one chunk, with each product's photo when the archive has it. */
async function chunkItems(products, photos) {
  return Promise.all(products.map(async (product) => {
    const entry = photos && photos.get(imageName(product));
    return {
      designation: product.designation,
      description: product.description,
      productid: product.productid,
      imageid: product.imageid,
      product_identifier: product.index,
      image_base64: entry ? await dataUrl(await readEntry(entry, "image/jpeg")) : null,
    };
  }));
}

function sleep(seconds) {
  return new Promise((resolve) => window.setTimeout(resolve, seconds * 1000));
}

/** POST one chunk; on 429 wait as long as the API says (telling the user), then try again. */
async function sendChunk(items, progressText) {
  for (let attempt = 0; ; attempt += 1) {
    try {
      return await api("/predict/batch", {method: "POST", body: JSON.stringify(items), headers: {"Content-Type": "application/json"}});
    } catch (error) {
      if (!(error instanceof ApiError) || error.status !== 429 || attempt >= MAX_RATE_LIMIT_WAITS) throw error;
      const seconds = Number(error.retryAfter) || 60;
      progressText(`Limite de requêtes atteinte : reprise automatique dans ${seconds} s.`);
      await sleep(seconds);
    }
  }
}

function setProgress(done, total, note = "") {
  $("batch-progress").max = total;
  $("batch-progress").value = done;
  $("batch-progress-text").textContent = `${done} / ${total} produits classés${note ? ` — ${note}` : ""}`;
}

/** Every product's prediction, in order, and the decisions the API counted over all the chunks. */
async function classifyAll(products, photos, limits) {
  const results = [];
  const decisions = {auto: 0, review: 0};
  for (let start = 0; start < products.length; start += limits.batchRows) {
    const chunk = products.slice(start, start + limits.batchRows);
    const items = await chunkItems(chunk, photos);
    let answer;
    try {
      answer = await sendChunk(items, (note) => setProgress(start, products.length, note));
    } catch (error) {
      const row = errorRow(error.detail);
      if (row !== null) error.product = chunk[row];
      throw error;
    }
    answer.predictions.forEach((prediction, i) => results.push({
      ...prediction, index: chunk[i].index, designation: chunk[i].designation, photoSent: Boolean(items[i].image_base64),
    }));
    for (const kind of Object.keys(decisions)) decisions[kind] += answer.decisions[kind];
    setProgress(results.length, products.length);
  }
  return {results, decisions};
}

function visibleRows() {
  const threshold = Number($("batch-threshold").value) / 100;
  return threshold >= 1 ? state.results : state.results.filter((r) => r.probability < threshold);
}

/** Whether the photo was used; a photo the API refused (unreadable, wrong format) is said so. */
function photoCell(result) {
  if (result.modalities.includes("image")) return "oui";
  return result.photoSent ? "non (photo refusée, texte seul)" : "non";
}

function decisionCell(result) {
  return DECISIONS[result.decision] || result.decision;
}

function renderTable() {
  const rows = visibleRows();
  const pages = Math.max(1, Math.ceil(rows.length / PAGE_SIZE));
  state.page = Math.min(state.page, pages - 1);
  const shown = rows.slice(state.page * PAGE_SIZE, (state.page + 1) * PAGE_SIZE);
  $("batch-table").tBodies[0].replaceChildren(...shown.map((r) => el("tr", {},
    el("td", {}, r.index), el("td", {class: "product-title"}, r.designation), el("td", {}, String(r.prdtypecode)),
    el("td", {}, r.category), el("td", {class: "number"}, percent(r.probability)),
    el("td", {}, decisionCell(r)), el("td", {}, photoCell(r)))));
  $("batch-caption").textContent = `${rows.length} produit(s) affiché(s) sur ${state.results.length}`;
  $("batch-page").textContent = `Page ${state.page + 1} sur ${pages}`;
  $("batch-prev").disabled = state.page === 0;
  $("batch-next").disabled = state.page >= pages - 1;
  $("batch-threshold-value").textContent = `${$("batch-threshold").value} %`;
}

function download() {
  const blob = new Blob([submissionCsv(state.results)], {type: "text/csv"});
  const link = el("a", {href: URL.createObjectURL(blob), download: "predictions_prdtypecode.csv"});
  document.body.append(link);
  link.click();
  link.remove();
  window.setTimeout(() => URL.revokeObjectURL(link.href), 10000);
}

function failureMessage(error, limits) {
  if (error instanceof CsvError) return `Fichier CSV invalide : ${error.message}.`;
  if (error instanceof ZipError) return `Archive de photos invalide : ${error.message}.`;
  const message = frenchMessage(error, "batch", limits);
  return error.product ? `Produit d'index ${error.product.index} : ${message}` : message;
}

async function run(event, limits) {
  event.preventDefault();
  const csvFile = $("batch-csv").files[0];
  if (!csvFile) {
    showMessage($("batch-message"), "Choisissez d'abord un fichier CSV.");
    return;
  }
  const zipFile = $("batch-zip").files[0];
  $("batch-submit").disabled = true;
  $("batch-results").hidden = true;
  showMessage($("batch-message"), "");
  try {
    const products = readProducts(await csvFile.text());
    if (!products.length) throw new CsvError("il ne contient aucun produit");
    const photos = zipFile ? await readZipIndex(zipFile) : null;
    $("batch-progress-box").hidden = false;
    setProgress(0, products.length);
    Object.assign(state, await classifyAll(products, photos, limits));
    state.page = 0;
    const withPhoto = state.results.filter((r) => r.modalities.includes("image")).length;
    $("batch-summary").textContent = `${state.results.length} produits classés, dont ${withPhoto} avec photo.`;
    $("batch-decisions").textContent = `Décisions : ${state.decisions.auto} classé(s) automatiquement, ${state.decisions.review} à revoir.`;
    $("batch-results").hidden = false;
    renderTable();
    showMessage($("batch-message"), "Classification terminée.", "success");
  } catch (error) {
    if (!(error instanceof SessionExpired)) showMessage($("batch-message"), failureMessage(error, limits));
  } finally {
    $("batch-submit").disabled = false;
  }
}

export function setupBatch(limits) {
  $("batch-form").addEventListener("submit", (event) => run(event, limits));
  $("batch-threshold").addEventListener("input", () => { state.page = 0; renderTable(); });
  $("batch-prev").addEventListener("click", () => { state.page -= 1; renderTable(); });
  $("batch-next").addEventListener("click", () => { state.page += 1; renderTable(); });
  $("batch-download").addEventListener("click", download);
}
