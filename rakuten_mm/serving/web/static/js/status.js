// "État du service": served version and models, rollout, drift verdicts, evaluate metrics and charts;
// promote / roll back for admins, after a confirmation.

import {api, frenchMessage, SessionExpired} from "./api.js";
import {barChart, heatMap} from "./charts.js";
import {$, decimal, el, fillFacts, percent, showMessage} from "./dom.js";

const MODEL_NAMES = {text: "Texte", image: "Image", fusion: "Fusion (modèle servi)", baseline: "Référence TF-IDF + SVM"};
const FEATURE_NAMES = {
  title_length: "Longueur du titre", description_missing: "Description absente", image_missing: "Photo absente",
  language: "Langue", predicted_class: "Catégorie prédite", confidence: "Confiance",
};
const SPLITS = {test: "jeu de test", val: "jeu de validation"};
const RELOAD_ERRORS = {
  rollout_file_invalid: "fichier de déploiement invalide", models_not_found: "modèles introuvables",
  models_not_loadable: "modèles illisibles",
};
let isAdmin = false;
let rolloutFile = null;

function shortHash(md5) {
  return String(md5).slice(0, 12);
}

/** The served review threshold in French; without one every product goes to review. */
function thresholdText(threshold) {
  return threshold === null || threshold === undefined ? "aucun : tous les produits vont en revue" : percent(threshold);
}

function renderModel(status) {
  const outs = el("ul", {class: "outs"}, ...Object.entries(status.model_outs).map(([path, md5]) => el("li", {}, `${path} (${shortHash(md5)})`)));
  const rows = [
    ["Version", status.model_version],
    ["Seuil de classement automatique", thresholdText(status.review_threshold)],
    ["Modèles chargés", status.models_loaded ? outs : "non"],
  ];
  if (status.reload_error) {
    const why = RELOAD_ERRORS[status.reload_error] || status.reload_error;
    rows.push(["Dernier rechargement", `échec (${why}) : les modèles précédents restent servis`]);
  }
  fillFacts($("status-model"), rows);
}

function renderRollout(status) {
  const candidate = status.candidate;
  const rows = [["Modèle actuel", status.model_version]];
  rows.push(candidate
    ? ["Candidat", `${candidate.model_version}, ${percent(candidate.share, 0)} des produits, seuil ${thresholdText(candidate.review_threshold)}`]
    : ["Candidat", "aucun : le modèle actuel sert tous les produits"]);
  if (rolloutFile) rows.push(["Modèle précédent", rolloutFile.previous || "aucun"]);
  fillFacts($("status-rollout"), rows);
  $("rollout-actions").hidden = !isAdmin;
  $("rollout-promote").disabled = !candidate;
  $("rollout-rollback").disabled = !(rolloutFile && rolloutFile.previous);
}

function renderDrift(drift) {
  const table = $("drift-table");
  if (!drift.available) {
    $("drift-summary").textContent = "Aucun rapport de dérive pour l'instant (il est produit par « make monitor »).";
    table.hidden = true;
    return;
  }
  const when = drift.generated_at ? new Date(drift.generated_at).toLocaleString("fr-FR") : "date inconnue";
  const verdict = drift.drift_detected ? "dérive détectée" : "pas de dérive";
  const share = drift.review_share === null || drift.review_share === undefined ? "" : `, ${percent(drift.review_share)} envoyées en revue`;
  $("drift-summary").textContent = `Dernier rapport : ${when}, ${drift.n_production ?? "?"} prédictions comparées${share} — ${verdict}.`;
  table.tBodies[0].replaceChildren(...Object.entries(drift.features).map(([name, f]) => el("tr", {class: f.drifted ? "drifted" : ""},
    el("th", {scope: "row"}, FEATURE_NAMES[name] || name), el("td", {}, f.test || "—"), el("td", {class: "number"}, decimal(f.score)),
    el("td", {class: "number"}, decimal(f.threshold)), el("td", {}, f.drifted ? "Dérive" : "Stable"))));
  table.hidden = false;
}

function scoresTable(metrics) {
  const rows = Object.entries(metrics.models).map(([name, s]) => el("tr", {},
    el("th", {scope: "row"}, MODEL_NAMES[name] || name), el("td", {class: "number"}, decimal(s.f1_weighted)),
    el("td", {class: "number"}, decimal(s.f1_macro)), el("td", {class: "number"}, decimal(s.accuracy))));
  return el("table", {class: "scores"},
    el("caption", {}, `Scores sur le ${SPLITS[metrics.split] || metrics.split}`),
    el("thead", {}, el("tr", {}, el("th", {scope: "col"}, "Modèle"), el("th", {scope: "col"}, "F1 pondéré"),
      el("th", {scope: "col"}, "F1 macro"), el("th", {scope: "col"}, "Exactitude"))),
    el("tbody", {}, ...rows));
}

function evaluationBlock(entry) {
  const who = entry.variant === "candidate" ? "du candidat" : "du modèle actuel";
  const block = el("article", {class: "evaluation", "data-variant": entry.variant},
    el("h3", {}, `Évaluation ${who} (version ${entry.model_version})`));
  if (!entry.metrics) {
    block.append(el("p", {}, "Pas de métriques d'évaluation à côté de ce modèle (le fichier metrics.json de l'étape evaluate est introuvable ou illisible)."));
    return block;
  }
  if (entry.matches_served === false) {
    block.append(el("p", {class: "message warning"}, "Attention : ces métriques ont été calculées pour d'autres fichiers de modèles que ceux servis."));
  }
  block.append(scoresTable(entry.metrics));
  const perClass = entry.metrics.per_class_f1;
  if (perClass.length) {
    block.append(el("h4", {}, "F1 par catégorie"), barChart(perClass.map((r) => ({
      label: `${r.category} (${r.prdtypecode})`, value: r.f1, valueText: decimal(r.f1, 2), title: `${r.category} (${r.prdtypecode}) : F1 ${decimal(r.f1)}`,
    })), `F1 par catégorie, de ${decimal(Math.min(...perClass.map((r) => r.f1)), 2)} à ${decimal(Math.max(...perClass.map((r) => r.f1)), 2)}`));
  }
  const confusion = entry.confusion_matrix;
  if (confusion) {
    block.append(el("h4", {}, "Matrice de confusion (lignes : catégorie réelle ; colonnes : catégorie prédite)"),
      heatMap(confusion.labels, confusion.matrix, `Matrice de confusion sur ${confusion.labels.length} catégories`));
  }
  return block;
}

async function load() {
  showMessage($("status-message"), "");
  try {
    const [status, drift, evaluation] = await Promise.all([api("/status"), api("/reports/drift"), api("/reports/evaluation")]);
    rolloutFile = isAdmin ? await api("/admin/rollout") : null;
    renderModel(status);
    renderRollout(status);
    renderDrift(drift);
    $("evaluation").replaceChildren(...evaluation.map(evaluationBlock));
  } catch (error) {
    if (!(error instanceof SessionExpired)) showMessage($("status-message"), frenchMessage(error, "status"));
  }
}

function confirm(text) {
  const dialog = $("confirm-dialog");
  $("confirm-text").textContent = text;
  dialog.returnValue = "";
  dialog.showModal();
  $("confirm-cancel").focus();
  return new Promise((resolve) => dialog.addEventListener("close", () => resolve(dialog.returnValue === "confirm"), {once: true}));
}

async function rolloutAction(action, question, done) {
  if (!(await confirm(question))) return;
  const buttons = [$("rollout-promote"), $("rollout-rollback")];
  buttons.forEach((button) => { button.disabled = true; });
  try {
    const result = await api(`/admin/rollout/${action}`, {method: "POST"});
    await load();
    showMessage($("status-message"), done(result), "success");
  } catch (error) {
    if (!(error instanceof SessionExpired)) showMessage($("status-message"), frenchMessage(error, "rollout"));
    await load();
  }
}

export function setupStatus() {
  $("status-refresh").addEventListener("click", load);
  $("rollout-promote").addEventListener("click", () => rolloutAction("promote",
    "Promouvoir le candidat ? Il servira alors tous les produits ; le modèle actuel sera gardé pour un retour en arrière.",
    (r) => `Candidat promu : la version ${r.current} sert désormais tous les produits.`));
  $("rollout-rollback").addEventListener("click", () => rolloutAction("rollback",
    "Revenir au modèle précédent ? Il servira de nouveau tous les produits et tout candidat sera arrêté.",
    (r) => `Retour effectué : la version ${r.current} sert de nouveau tous les produits.`));
  return {
    load,
    setAdmin(admin) {
      isAdmin = admin;
      $("rollout-actions").hidden = !admin;
    },
  };
}
