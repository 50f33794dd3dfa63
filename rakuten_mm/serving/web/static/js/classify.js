// "Classer un produit": title, description, photo (file picker or drag-and-drop, with a preview), result.

import {api, frenchMessage, SessionExpired} from "./api.js";
import {$, el, percent, showMessage} from "./dom.js";

const VARIANTS = {current: "actuelle", candidate: "candidate (test A/B)"};
let photo = null;
let previewUrl = null;

/** "texte seul" without a photo, "texte + photo" when both were used. */
export function modalitiesText(modalities) {
  return modalities.includes("image") ? "texte + photo" : "texte seul (aucune photo)";
}

export function variantText(result) {
  return `version ${result.model_version}, variante ${VARIANTS[result.variant] || result.variant}`;
}

function setPhoto(file) {
  photo = file || null;
  if (previewUrl) URL.revokeObjectURL(previewUrl);
  previewUrl = photo ? URL.createObjectURL(photo) : null;
  $("preview").hidden = !photo;
  if (previewUrl) $("preview-image").src = previewUrl;
  else $("preview-image").removeAttribute("src");
  $("preview-name").textContent = photo ? `${photo.name} (${Math.ceil(photo.size / 1024)} Ko)` : "";
  if (!photo) $("photo").value = "";
}

function setupDropZone() {
  const zone = $("drop-zone");
  zone.addEventListener("dragover", (event) => {
    event.preventDefault();
    zone.classList.add("dragging");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("dragging"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("dragging");
    const files = event.dataTransfer.files;
    if (!files.length) return;
    // Keep the file input in step, so that it says which file will be sent.
    $("photo").files = files;
    setPhoto(files[0]);
  });
}

function topFiveItem(entry) {
  const label = `${entry.category} (${entry.prdtypecode})`;
  const bar = el("progress", {max: "1", value: String(entry.probability), "aria-label": `${label} : ${percent(entry.probability)}`});
  return el("li", {}, el("span", {class: "top5-label"}, label), bar, el("span", {class: "top5-value"}, percent(entry.probability)));
}

function showResult(title, result) {
  $("result-title").textContent = title;
  $("result-category").textContent = result.category;
  $("result-code").textContent = `code ${result.prdtypecode}`;
  $("result-confidence").textContent = percent(result.probability);
  $("result-modalities").textContent = modalitiesText(result.modalities);
  $("result-model").textContent = variantText(result);
  $("result-top5").replaceChildren(...result.top5.map(topFiveItem));
  $("classify-result").hidden = false;
}

async function classify(event, limits) {
  event.preventDefault();
  const title = $("designation").value;
  if (!title.trim()) {
    showMessage($("classify-message"), "Le titre du produit est obligatoire.");
    $("designation").focus();
    return;
  }
  const form = new FormData();
  form.append("designation", title);
  if ($("description").value.trim()) form.append("description", $("description").value);
  if (photo) form.append("image", photo, photo.name);
  const button = $("classify-submit");
  button.disabled = true;
  $("classify-form").setAttribute("aria-busy", "true");
  showMessage($("classify-message"), "");
  performance.mark("classify-start");
  try {
    const result = await api("/predict", {method: "POST", body: form});
    showResult(title, result);
    performance.mark("classify-shown");
    performance.measure("classify-round-trip", "classify-start", "classify-shown");
  } catch (error) {
    if (error instanceof SessionExpired) return;
    $("classify-result").hidden = true;
    showMessage($("classify-message"), frenchMessage(error, "product", limits));
  } finally {
    button.disabled = false;
    $("classify-form").removeAttribute("aria-busy");
  }
}

export function setupClassify(limits) {
  $("photo").addEventListener("change", () => setPhoto($("photo").files[0]));
  $("photo-clear").addEventListener("click", () => {
    setPhoto(null);
    $("photo").focus();
  });
  setupDropZone();
  $("classify-form").addEventListener("submit", (event) => classify(event, limits));
}
