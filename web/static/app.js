// Progressive enhancement only: the page works without it.
// While an answer is computed, show progress and block a second submission.
document.addEventListener("DOMContentLoaded", () => {
  const form = document.querySelector("form.ask");
  if (!form) return;
  const button = form.querySelector("button[type=submit]");
  const status = form.querySelector(".status");

  const setBusy = (busy) => {
    form.dataset.busy = busy ? "1" : "";
    if (button) {
      button.disabled = busy;
      button.textContent = busy ? "Searching…" : "Ask";
    }
    if (status) status.hidden = !busy;
  };

  form.addEventListener("submit", (event) => {
    if (form.dataset.busy === "1") {
      event.preventDefault();
      return;
    }
    setBusy(true);
  });
  // Coming back with the browser's back button (maybe from the back/forward cache) restores a usable form.
  window.addEventListener("pageshow", () => setBusy(false));
});
