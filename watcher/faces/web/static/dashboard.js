// keb-watcher dashboard: live updates and copy buttons. No data is ever written into this file:
// the pages carry it in their HTML (escaped by the server) and the API answers JSON.
(function () {
  "use strict";
  var EVERY = 1000; // ms between two looks at /api/board
  var revision = document.body.getAttribute("data-revision");
  var live = document.getElementById("live");

  function say(text, lost) {
    if (!live) return;
    live.textContent = text;
    live.classList.toggle("lost", !!lost);
  }

  // Replace every [data-live] region with the same region of a freshly fetched page, keeping
  // the scroll position, open <details> and the reader's own form fields (not live regions).
  function swap(doc) {
    var x = window.scrollX, y = window.scrollY;
    var open = {};
    document.querySelectorAll("details[open][data-key]").forEach(function (d) {
      open[d.getAttribute("data-key")] = true;
    });
    document.querySelectorAll("[data-live]").forEach(function (old) {
      var fresh = doc.getElementById(old.id);
      if (fresh) old.replaceWith(document.importNode(fresh, true));
    });
    document.querySelectorAll("details[data-key]").forEach(function (d) {
      if (open[d.getAttribute("data-key")]) d.open = true;
    });
    window.scrollTo(x, y);
    revision = doc.body.getAttribute("data-revision");
  }

  function refresh() {
    return fetch(window.location.href, { credentials: "same-origin", cache: "no-store" })
      .then(function (answer) {
        if (!answer.ok) throw new Error("HTTP " + answer.status);
        return answer.text();
      })
      .then(function (html) {
        swap(new DOMParser().parseFromString(html, "text/html"));
      });
  }

  function tick() {
    fetch("/api/board", { credentials: "same-origin", cache: "no-store" })
      .then(function (answer) {
        if (!answer.ok) throw new Error("HTTP " + answer.status);
        return answer.json();
      })
      .then(function (board) {
        var stale = document.getElementById("stale");
        if (stale) stale.hidden = !board.stale;
        if (board.revision !== revision) return refresh();
      })
      .then(function () {
        say("live: updated " + new Date().toLocaleTimeString(), false);
      })
      .catch(function () {
        say("connection lost: retrying", true);
      })
      .then(function () {
        window.setTimeout(tick, EVERY);
      });
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest ? event.target.closest("button[data-copy]") : null;
    if (!button) return;
    var text = button.getAttribute("data-copy");
    var done = function () {
      button.textContent = "Copied";
      window.setTimeout(function () { button.textContent = "Copy"; }, 1500);
    };
    if (navigator.clipboard && navigator.clipboard.writeText) {
      navigator.clipboard.writeText(text).then(done, function () {});
    }
  });

  document.querySelectorAll("select[data-autosubmit]").forEach(function (select) {
    select.addEventListener("change", function () { select.form.submit(); });
  });

  if (revision !== null) {
    say("live", false);
    window.setTimeout(tick, EVERY);
  }
})();
