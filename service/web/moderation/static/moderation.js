// The review page's keyboard shortcuts and actions. Plain JavaScript, loaded from 'self' (the
// Content-Security-Policy allows no inline script). Without it the page still works through forms.
(function () {
  "use strict";

  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const bulkForm = document.getElementById("bulk");
  const toast = document.getElementById("toast");
  const dialog = document.getElementById("shortcuts");
  const LABELS = { approve: "Approved", spam: "Rejected as spam", abusive: "Rejected as abusive" };
  let lastAction = null;

  function articles() {
    return Array.from(document.querySelectorAll("article.comment"));
  }

  function open(article) {
    return !article.classList.contains("decided");
  }

  function current() {
    return document.querySelector("article.comment.current");
  }

  function setCurrent(article) {
    if (!article) {
      return;
    }
    const previous = current();
    if (previous && previous !== article) {
      previous.classList.remove("current");
    }
    article.classList.add("current");
    article.focus({ preventScroll: true });
    article.scrollIntoView({ block: "nearest" });
  }

  function move(step) {
    const all = articles().filter(open);
    if (all.length === 0) {
      return;
    }
    const here = all.indexOf(current());
    const next = here === -1 ? 0 : Math.min(Math.max(here + step, 0), all.length - 1);
    setCurrent(all[next]);
  }

  // After an action: the next open comment below the current one, else the nearest one above it.
  function advance(from) {
    const all = articles();
    const index = all.indexOf(from);
    const after = all.slice(index + 1).find(open);
    const before = all.slice(0, Math.max(index, 0)).reverse().find(open);
    const next = after || before;
    if (next) {
      setCurrent(next);
    } else {
      if (from) {
        from.classList.remove("current");
      }
      const done = document.getElementById("page-done");
      if (done) {
        done.hidden = false;
      }
    }
  }

  async function post(url, body) {
    const response = await fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: {
        "Content-Type": "application/json",
        Accept: "application/json",
        "X-CSRF-Token": csrf,
      },
      body: JSON.stringify(body),
    });
    let json = null;
    try {
      json = await response.json();
    } catch (error) {
      json = null;
    }
    if (!response.ok) {
      const message = json && json.error ? json.error.message : "HTTP " + response.status;
      throw new Error(message);
    }
    return json;
  }

  function updateCounts(counts) {
    if (!counts) {
      return;
    }
    document.querySelectorAll("[data-count]").forEach(function (element) {
      const value = counts[element.dataset.count];
      if (value !== undefined) {
        element.textContent = String(value);
      }
    });
  }

  function showToast(message, undoable) {
    if (!toast) {
      return;
    }
    toast.querySelector(".message").textContent = message;
    toast.querySelector("[data-action=undo]").hidden = !undoable;
    toast.hidden = false;
  }

  function result(article, message) {
    const line = article.querySelector(".result");
    if (line) {
      line.textContent = message;
    }
  }

  function selected() {
    return Array.from(document.querySelectorAll('input[name=ids][form=bulk]:checked'));
  }

  function updateSelected() {
    const counter = document.getElementById("selected-count");
    if (counter) {
      counter.textContent = selected().length + " selected";
    }
    articles().forEach(function (article) {
      const box = article.querySelector("input[name=ids]");
      article.classList.toggle("selected", Boolean(box && box.checked));
    });
  }

  function markDecided(article, decision) {
    article.classList.add("decided", "busy");
    article.dataset.decision = decision;
    const box = article.querySelector("input[name=ids]");
    if (box) {
      box.checked = false;
    }
    result(article, LABELS[decision] + "…");
  }

  function reopen(article, message) {
    article.classList.remove("decided", "busy", "done");
    delete article.dataset.decision;
    result(article, message);
  }

  // Decide on the selected comments if any are selected, else on the current one.
  async function decide(decision, targets) {
    let chosen = targets;
    if (!chosen) {
      const boxes = selected();
      chosen = boxes.length
        ? boxes.map(function (box) { return box.closest("article.comment"); })
        : [current()].filter(Boolean);
    }
    chosen = chosen.filter(function (article) { return article && open(article); });
    if (chosen.length === 0) {
      return;
    }
    const focusFrom = current() || chosen[chosen.length - 1];
    chosen.forEach(function (article) { markDecided(article, decision); });
    updateSelected();
    advance(focusFrom);
    const ids = chosen.map(function (article) { return article.dataset.id; });
    try {
      const json = await post(bulkForm.action, { ids: ids, decision: decision });
      const changed = [];
      json.results.forEach(function (outcome) {
        const article = document.getElementById("c-" + outcome.id);
        if (!article) {
          return;
        }
        if (outcome.ok) {
          article.classList.remove("busy");
          article.classList.add("done");
          result(article, LABELS[decision] + (outcome.changed ? "" : " (already)"));
          if (outcome.changed) {
            changed.push(outcome.id);
          }
        } else {
          reopen(article, "Not decided: " + outcome.error);
        }
      });
      updateCounts(json.counts);
      lastAction = changed.length ? { ids: changed } : lastAction;
      const noun = changed.length === 1 ? "comment" : "comments";
      showToast(LABELS[decision] + ": " + changed.length + " " + noun + ".", changed.length > 0);
    } catch (error) {
      chosen.forEach(function (article) { reopen(article, "Failed: " + error.message); });
      showToast("Failed: " + error.message, false);
    }
  }

  async function undo() {
    if (!lastAction) {
      return;
    }
    const ids = lastAction.ids;
    lastAction = null;
    try {
      const json = await post(bulkForm.action, { ids: ids, decision: "undo" });
      let first = null;
      let restored = 0;
      json.results.forEach(function (outcome) {
        const article = document.getElementById("c-" + outcome.id);
        if (outcome.ok && outcome.changed) {
          restored += 1;
          if (article) {
            reopen(article, "Undone: back to " + outcome.status + ".");
            first = first || article;
          }
        } else if (article) {
          result(article, "Could not undo: " + outcome.error);
        }
      });
      updateCounts(json.counts);
      const done = document.getElementById("page-done");
      if (done && first) {
        done.hidden = true;
      }
      setCurrent(first);
      showToast("Undone: " + restored + (restored === 1 ? " comment." : " comments."), false);
    } catch (error) {
      showToast("Undo failed: " + error.message, false);
    }
  }

  async function rejectAuthor(article, url) {
    try {
      const json = await post(url, { decision: "spam" });
      const changed = [];
      json.results.forEach(function (outcome) {
        if (!outcome.changed) {
          return;
        }
        changed.push(outcome.id);
        const other = document.getElementById("c-" + outcome.id);
        if (other) {
          other.classList.add("decided", "done");
          result(other, LABELS.spam + " (author)");
        }
      });
      updateCounts(json.counts);
      lastAction = changed.length ? { ids: changed } : lastAction;
      showToast("Rejected " + changed.length + " pending comments from this author.", changed.length > 0);
      advance(article);
    } catch (error) {
      showToast("Failed: " + error.message, false);
    }
  }

  async function reveal(article) {
    const contact = article.querySelector("dl.contact");
    if (!contact || contact.dataset.revealed) {
      return;
    }
    const response = await fetch(contact.dataset.contactUrl, {
      credentials: "same-origin",
      headers: { Accept: "application/json" },
    });
    if (!response.ok) {
      return;
    }
    const json = await response.json();
    ["email", "url", "ip"].forEach(function (name) {
      const cell = contact.querySelector('[data-field="' + name + '"]');
      if (cell) {
        // textContent only: the values are untrusted and must never become markup or a link.
        const isolate = document.createElement("bdi");
        isolate.textContent = json[name] || "—";
        cell.replaceChildren(isolate);
      }
    });
    contact.dataset.revealed = "1";
    const button = article.querySelector("[data-action=reveal]");
    if (button) {
      button.hidden = true;
    }
  }

  function toggleHelp() {
    if (!dialog) {
      return;
    }
    if (dialog.open) {
      dialog.close();
    } else {
      dialog.showModal();
    }
  }

  function nextPage() {
    const link = document.getElementById("next-page");
    if (link) {
      window.location.assign(link.href);
    } else {
      window.location.reload();
    }
  }

  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey) {
      return;
    }
    const target = event.target;
    if (target && (target.isContentEditable || /^(INPUT|SELECT|TEXTAREA)$/.test(target.tagName))) {
      return;
    }
    if (event.key === "?") {
      event.preventDefault();
      toggleHelp();
      return;
    }
    if (dialog && dialog.open) {
      return;
    }
    const article = current();
    const actions = {
      j: function () { move(1); },
      k: function () { move(-1); },
      a: function () { decide("approve"); },
      s: function () { decide("spam"); },
      r: function () { decide("abusive"); },
      u: undo,
      n: nextPage,
      x: function () {
        const box = article && article.querySelector("input[name=ids]");
        if (box && open(article)) {
          box.checked = !box.checked;
          updateSelected();
        }
      },
      e: function () { if (article) { reveal(article); } },
      h: function () {
        const details = article && article.querySelector("details.history");
        if (details) {
          details.open = !details.open;
        }
      },
    };
    const action = actions[event.key];
    if (action) {
      event.preventDefault();
      action();
    }
  });

  document.addEventListener("submit", function (event) {
    const form = event.target;
    const button = event.submitter;
    if (form === bulkForm) {
      event.preventDefault();
      if (button && button.value) {
        const boxes = selected();
        decide(button.value, boxes.map(function (box) { return box.closest("article.comment"); }));
      }
      return;
    }
    if (!form.classList.contains("actions")) {
      return;
    }
    event.preventDefault();
    const article = form.closest("article.comment");
    setCurrent(article);
    if (button && button.dataset.action === "reject-author") {
      rejectAuthor(article, button.formAction);
    } else if (button && button.dataset.decision) {
      decide(button.dataset.decision, [article]);
    }
  });

  document.addEventListener("click", function (event) {
    const button = event.target.closest("button[data-action]");
    if (button) {
      const action = button.dataset.action;
      if (action === "reveal") {
        reveal(button.closest("article.comment"));
      } else if (action === "undo") {
        undo();
      } else if (action === "help") {
        toggleHelp();
      }
      return;
    }
    const article = event.target.closest("article.comment");
    if (article && open(article) && !event.target.closest("a, input, label, summary")) {
      setCurrent(article);
    }
  });

  document.addEventListener("change", function (event) {
    if (event.target.id === "select-all") {
      const checked = event.target.checked;
      articles().filter(open).forEach(function (article) {
        const box = article.querySelector("input[name=ids]");
        if (box) {
          box.checked = checked;
        }
      });
    }
    if (event.target.matches("input[name=ids], #select-all")) {
      updateSelected();
    }
  });

  if (bulkForm) {
    const countsUrl = bulkForm.action.replace(/decisions$/, "counts");
    window.setInterval(function () {
      fetch(countsUrl, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (response) { return response.ok ? response.json() : null; })
        .then(updateCounts)
        .catch(function () {});
    }, 30000);
    const first = articles().find(open);
    if (first) {
      setCurrent(first);
    }
  }
})();
