// Starts ReDoc on the API's OpenAPI document (an external file: the page's CSP forbids inline scripts).
"use strict";
window.addEventListener("DOMContentLoaded", () => {
  const root = document.getElementById("redoc");
  // System fonts: nothing is fetched from a font service.
  Redoc.init(root.dataset.openapiUrl, {theme: {typography: {fontFamily: "system-ui, sans-serif", headings: {fontFamily: "system-ui, sans-serif"}}}}, root);
});
