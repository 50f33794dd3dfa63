// DOM helpers. Every piece of text goes in through textContent, never innerHTML: product titles and
// descriptions (and server messages) are shown as text, whatever markup they contain.

export function $(id) {
  return document.getElementById(id);
}

/** A new element with attributes and children (strings become text nodes). */
export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value !== null && value !== undefined && value !== false) node.setAttribute(name, value === true ? "" : String(value));
  }
  // append() turns strings into text nodes: no markup is ever parsed.
  node.append(...children.filter((child) => child !== null && child !== undefined));
  return node;
}

/** Show a message (kind: error, success or info) in a role="alert" paragraph, or hide it with an empty text. */
export function showMessage(node, text, kind = "error") {
  node.textContent = text || "";
  node.className = `message ${kind}`;
  node.hidden = !text;
}

/** A number as a French percentage, e.g. 0.873 -> "87,3 %". */
export function percent(value, digits = 1) {
  return `${(value * 100).toLocaleString("fr-FR", {minimumFractionDigits: digits, maximumFractionDigits: digits})} %`;
}

/** A number with French decimals. */
export function decimal(value, digits = 3) {
  return value === null || value === undefined ? "—" : Number(value).toLocaleString("fr-FR", {minimumFractionDigits: digits, maximumFractionDigits: digits});
}

/** Rows of a definition list: [[term, description (text or element)], ...]. */
export function fillFacts(dl, rows) {
  dl.replaceChildren(...rows.flatMap(([term, description]) => [el("dt", {}, term), el("dd", {}, description)]));
}
