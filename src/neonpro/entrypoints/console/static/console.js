// The console's only script: the "Imprimir" buttons (no inline script: the CSP forbids it).
document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll("[data-imprimir]").forEach(function (button) {
    button.addEventListener("click", function () { window.print(); });
  });
});
