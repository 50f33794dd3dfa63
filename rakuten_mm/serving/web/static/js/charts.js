// Two SVG charts drawn with DOM calls (no library, no inline style): horizontal bars and a heat map.
// Each mark carries a <title> (its value on hover and for screen readers).

const SVG = "http://www.w3.org/2000/svg";

function svg(tag, attributes = {}, text = null) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, String(value));
  if (text !== null) node.textContent = text;
  return node;
}

function withTitle(node, text) {
  node.append(svg("title", {}, text));
  return node;
}

/** Horizontal bars, one per row {label, value (0-1), title}; labelled for screen readers by ariaLabel. */
export function barChart(rows, ariaLabel) {
  const labelWidth = 260, barWidth = 360, rowHeight = 20, top = 8;
  const height = top + rows.length * rowHeight + 24;
  const chart = svg("svg", {viewBox: `0 0 ${labelWidth + barWidth + 60} ${height}`, role: "img", "aria-label": ariaLabel, class: "chart"});
  rows.forEach((row, i) => {
    const y = top + i * rowHeight;
    chart.append(svg("text", {x: labelWidth - 6, y: y + 14, "text-anchor": "end", class: "chart-label"}, row.label));
    chart.append(withTitle(svg("rect", {x: labelWidth, y: y + 3, width: Math.max(0, row.value) * barWidth, height: rowHeight - 6, class: "bar"}), row.title));
    chart.append(svg("text", {x: labelWidth + Math.max(0, row.value) * barWidth + 4, y: y + 14, class: "chart-value"}, row.valueText));
  });
  for (const tick of [0, 0.5, 1]) {
    const x = labelWidth + tick * barWidth;
    chart.append(svg("line", {x1: x, x2: x, y1: top, y2: height - 20, class: "axis"}));
    chart.append(svg("text", {x, y: height - 6, "text-anchor": "middle", class: "chart-value"}, tick.toLocaleString("fr-FR")));
  }
  return chart;
}

/** Colour of a share 0-1: white to the console's dark red. */
function heat(share) {
  const mix = (from, to) => Math.round(from + (to - from) * share);
  return `rgb(${mix(255, 122)}, ${mix(255, 0)}, ${mix(255, 25)})`;
}

/** A confusion matrix as a heat map: rows are the true codes, columns the predicted ones (shares per row). */
export function heatMap(labels, matrix, ariaLabel) {
  const cell = 18, margin = 56;
  const size = margin + labels.length * cell;
  const chart = svg("svg", {viewBox: `0 0 ${size + 8} ${size + 8}`, role: "img", "aria-label": ariaLabel, class: "chart heatmap"});
  labels.forEach((label, i) => {
    const middle = margin + i * cell + cell / 2;
    chart.append(svg("text", {x: margin - 4, y: middle + 4, "text-anchor": "end", class: "chart-label small"}, label));
    chart.append(svg("text", {x: middle, y: margin - 4, transform: `rotate(-60 ${middle} ${margin - 4})`, class: "chart-label small"}, label));
  });
  matrix.forEach((row, i) => {
    const total = row.reduce((sum, count) => sum + count, 0) || 1;
    row.forEach((count, j) => {
      const rect = svg("rect", {x: margin + j * cell, y: margin + i * cell, width: cell - 1, height: cell - 1, fill: heat(count / total), class: "cell"});
      chart.append(withTitle(rect, `réel ${labels[i]}, prédit ${labels[j]} : ${count} produit(s)`));
    });
  });
  return chart;
}
