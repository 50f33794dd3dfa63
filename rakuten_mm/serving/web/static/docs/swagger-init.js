// Starts Swagger UI on the API's OpenAPI document (an external file: the page's CSP forbids inline scripts).
"use strict";
window.addEventListener("DOMContentLoaded", () => {
  const root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.dataset.openapiUrl,
    dom_id: "#swagger-ui",
    layout: "BaseLayout",
    deepLinking: true,
    showExtensions: true,
    showCommonExtensions: true,
    // No validator badge: it would send the document to an outside service.
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis],
  });
});
