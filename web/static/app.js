// Progressive enhancement only: the page works without it.
// While an answer is computed, show progress and block a second submission.
document.addEventListener("DOMContentLoaded", () => {
  const form = document.querySelector("form.ask");
  if (!form) return;
  form.addEventListener("submit", (event) => {
    if (form.dataset.busy === "1") {
      event.preventDefault();
      return;
    }
    form.dataset.busy = "1";
    const button = form.querySelector("button[type=submit]");
    if (button) {
      button.disabled = true;
      button.textContent = "Searching…";
    }
    const status = form.querySelector(".status");
    if (status) status.hidden = false;
  });
  // Coming back with the browser's back button restores a usable form.
  window.addEventListener("pageshow", () => {
    form.dataset.busy = "";
    const button = form.querySelector("button[type=submit]");
    if (button) {
      button.disabled = false;
      button.textContent = "Ask";
    }
  });
});
