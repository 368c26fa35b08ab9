// The Audit Logs page's only script: "Load older entries" appends the next page of rows in
// place, and after each export the export form takes a new id (the manifest link keeps the
// last export's). Without script the same link opens the next page and a repeated export gets
// an id from the service, so nothing depends on this file.
(function () {
  "use strict";

  function loadMore(link) {
    var href = link.getAttribute("href");
    link.setAttribute("aria-busy", "true");
    fetch(href, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (response) {
        if (!response.ok) {
          throw new Error("HTTP " + response.status);
        }
        return response.text();
      })
      .then(function (text) {
        var doc = new DOMParser().parseFromString(text, "text/html");
        var incoming = doc.getElementById("entry-rows");
        var body = document.getElementById("entry-rows");
        if (!incoming || !body) {
          throw new Error("no rows in the response");
        }
        incoming.querySelectorAll("tr.entry").forEach(function (row) {
          body.appendChild(document.importNode(row, true));
        });
        var shown = document.querySelector("[data-shown]");
        if (shown) {
          shown.textContent = body.querySelectorAll("tr.entry").length.toLocaleString("en-US");
        }
        var next = doc.querySelector("a[data-load-more]");
        if (next) {
          link.setAttribute("href", next.getAttribute("href"));
          link.removeAttribute("aria-busy");
        } else {
          link.remove();
        }
      })
      .catch(function () {
        window.location.assign(href);
      });
  }

  function newExportId() {
    var bytes = new Uint8Array(12);
    window.crypto.getRandomValues(bytes);
    return "exp_" + Array.prototype.map.call(bytes, function (b) {
      return ("0" + b.toString(16)).slice(-2);
    }).join("");
  }

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form || !form.matches || !form.matches("form.export")) {
      return;
    }
    var input = form.querySelector("input[name=export_id]");
    var link = document.getElementById("export-manifest");
    if (!input || !link) {
      return;
    }
    link.setAttribute("href", link.getAttribute("data-base") + input.value + "/manifest");
    window.setTimeout(function () {
      input.value = newExportId(); // after the form's data was taken
    }, 0);
  });

  document.addEventListener("click", function (event) {
    var target = event.target;
    var link = target && target.closest ? target.closest("a[data-load-more]") : null;
    if (!link || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey) {
      return;
    }
    event.preventDefault();
    if (link.getAttribute("aria-busy") !== "true") {
      loadMore(link);
    }
  });
})();
