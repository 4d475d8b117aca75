// A file over the upload limit is refused here, before it is sent: sending 100 MiB to be told the
// limit is 20 MiB wastes the user's time (the server refuses it too, for browsers without JavaScript).
document.addEventListener("DOMContentLoaded", () => {
  const input = document.querySelector("input[type=file][data-max-bytes]");
  if (!input) return;
  const problem = document.getElementById("file-problem");
  const tooLarge = () => {
    const file = input.files && input.files[0];
    const over = Boolean(file) && file.size > Number(input.dataset.maxBytes);
    problem.hidden = !over;
    problem.textContent = over
      ? file.name + " is larger than the " + input.dataset.maxSize + " upload limit: choose a smaller file."
      : "";
    input.setAttribute("aria-invalid", over ? "true" : "false");
    return over;
  };
  input.addEventListener("change", tooLarge);
  input.form.addEventListener("submit", (event) => {
    if (tooLarge()) event.preventDefault();
  });
});

// The library's indexing progress, kept up to date in place (without JavaScript the page refreshes
// itself instead). Reads /library/progress, the server's build state; reloads the page once the
// build is over so the table shows the documents as they now are.
document.addEventListener("DOMContentLoaded", () => {
  const root = document.querySelector("[data-progress-url]");
  if (!root) return;
  const url = root.dataset.progressUrl;
  const section = document.getElementById("build");
  const bar = document.getElementById("build-bar");
  const phase = document.getElementById("build-phase");
  const list = document.getElementById("build-documents");
  let wasRunning = root.dataset.running === "1";

  const item = (docId, entry) => {
    const li = document.createElement("li");
    li.dataset.doc = docId;
    const name = document.createElement("span");
    name.className = "doc";
    name.textContent = docId;
    const state = document.createElement("span");
    state.className = "state state-" + entry.state;
    state.textContent = entry.state;
    li.append(name, ": ", state);
    if (entry.reason) {
      const reason = document.createElement("span");
      reason.className = "reason";
      reason.textContent = "(" + entry.reason + ")";
      li.append(" ", reason);
    }
    return li;
  };

  const show = (p) => {
    section.hidden = !p.running;
    bar.value = p.percent;
    bar.textContent = p.percent + "%";
    phase.textContent = p.phase + (p.total ? " " + p.done + "/" + p.total : "");
    list.replaceChildren(...Object.keys(p.documents).sort().map((id) => item(id, p.documents[id])));
    for (const id of Object.keys(p.documents)) {  // the table's status column, for rows already shown
      const row = [...document.querySelectorAll("tr[data-doc]")].find((tr) => tr.dataset.doc === id);
      const cell = row && row.querySelector(".state");
      if (cell) {
        cell.className = "state state-" + p.documents[id].state;
        cell.textContent = p.documents[id].state;
      }
    }
  };

  const poll = async () => {
    try {
      const response = await fetch(url, { headers: { accept: "application/json" }, cache: "no-store" });
      if (response.ok) {
        const p = await response.json();
        if (wasRunning && !p.running) {
          window.location.reload();
          return;
        }
        wasRunning = p.running;
        show(p);
      }
    } catch (error) {
      // The server may be restarting: try again at the next tick.
    }
    window.setTimeout(poll, wasRunning ? 700 : 3000);
  };
  window.setTimeout(poll, wasRunning ? 300 : 3000);
});
