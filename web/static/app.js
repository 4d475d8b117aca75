// Progressive enhancement only: every page works without it.
document.addEventListener("DOMContentLoaded", () => {
  const announcer = document.getElementById("announce");
  // Screen readers read a live region's new text; a short delay lets them finish the page title first.
  // The latest announcement wins: one still pending (the answer's, on load) is dropped, not read after it.
  let pending;
  const announce = (text, delay = 150) => {
    if (!announcer) return;
    clearTimeout(pending);
    announcer.textContent = "";
    pending = setTimeout(() => { announcer.textContent = text; }, delay);
  };

  const answer = document.querySelector(".answer[data-announce]");
  if (answer) announce(answer.dataset.announce, 650);

  // "Copy citation" / "Copy link": shown only with JavaScript; without it the text is in a <details>.
  for (const button of document.querySelectorAll("button.copy[data-copy]")) {
    button.hidden = false;
    button.addEventListener("click", async () => {
      const source = document.getElementById(button.dataset.copy);
      if (!source) return;
      const text = source.textContent.trim();
      try {
        await navigator.clipboard.writeText(text);
        announce(button.dataset.done || "Copied");
        button.dataset.copied = "1";
      } catch (err) {
        // No clipboard (an insecure origin, a refused permission): open the text and select it instead.
        const details = source.closest("details");
        if (details) details.open = true;
        const range = document.createRange();
        range.selectNodeContents(source);
        const selection = window.getSelection();
        selection.removeAllRanges();
        selection.addRange(range);
        announce("Could not copy automatically; the text is selected, press Ctrl+C to copy it.");
      }
    });
  }

  // While an answer is computed, show progress and block a second submission.
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
