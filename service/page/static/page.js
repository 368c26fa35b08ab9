// The Audit Logs page's only script: "Load older entries" appends the next page of rows in
// place; after each export the export form takes a new id (the manifest link keeps the last
// export's); a chip or preset clicked after typing a search, picking actors or dates carries
// what was typed along. Without script the links and forms do the same work with a reload
// (what was typed but not applied is then left out), so nothing depends on this file.
(function () {
  "use strict";

  document.documentElement.classList.add("js");

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
        if (window.history && window.history.replaceState) {
          window.history.replaceState(null, "", href); // a reload keeps the place
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

  function plainClick(event) {
    return event.button === 0 && !event.metaKey && !event.ctrlKey && !event.shiftKey;
  }

  function setAll(params, name, values) {
    params.delete(name);
    values.forEach(function (value) {
      if (value.trim()) {
        params.append(name, value);
      }
    });
  }

  // The filter form's values as typed, applied or not, over the link's own.
  function withTypedFilters(link, form) {
    var url = new URL(link.getAttribute("href"), window.location.href);
    var params = url.searchParams;
    var field = function (name) {
      var input = form.elements.namedItem(name);
      return input && typeof input.value === "string" ? [input.value] : [];
    };
    setAll(params, "q", field("q"));
    var actors = form.querySelectorAll("input[name=actor]:checked");
    setAll(params, "actor", Array.prototype.map.call(actors, function (box) {
      return box.value;
    }));
    if (!link.closest(".facet-range")) { // a preset replaces the custom dates
      setAll(params, "start", field("start"));
      setAll(params, "end", field("end"));
    }
    params.delete("cursor");
    var query = params.toString();
    return url.pathname + (query ? "?" + query : "");
  }

  document.addEventListener("click", function (event) {
    var target = event.target;
    var chip = target && target.closest ? target.closest(".facets a.chip") : null;
    var form = document.querySelector("form.filter-form");
    if (chip && form && plainClick(event)) {
      event.preventDefault();
      window.location.assign(withTypedFilters(chip, form));
      return;
    }
    var open = document.querySelector("details.picker[open]");
    if (open && !open.contains(target)) {
      open.removeAttribute("open");
    }
  });

  // An entry's details use the row's full width: while open, they sit in a row of their own.
  document.addEventListener("toggle", function (event) {
    var details = event.target;
    if (!details.matches || !details.matches("td.col-details > details")) {
      return;
    }
    var row = details.closest("tr");
    var next = row.nextElementSibling;
    var expanded = next && next.classList.contains("entry-expanded") ? next : null;
    if (details.open && !expanded && window.matchMedia("(min-width: 761px)").matches) {
      expanded = document.createElement("tr");
      expanded.className = "entry-expanded";
      expanded.setAttribute("data-for", row.getAttribute("data-id"));
      var cell = document.createElement("td");
      cell.colSpan = row.children.length;
      while (details.children.length > 1) {
        cell.appendChild(details.children[1]);
      }
      expanded.appendChild(cell);
      row.classList.add("is-expanded");
      row.parentNode.insertBefore(expanded, row.nextSibling);
    } else if (!details.open && expanded) {
      while (expanded.firstChild.firstChild) {
        details.appendChild(expanded.firstChild.firstChild);
      }
      expanded.remove();
      row.classList.remove("is-expanded");
    }
  }, true);

  function copied(button) {
    var label = button.textContent;
    button.textContent = "Copied";
    window.setTimeout(function () {
      button.textContent = label;
    }, 1500);
  }

  document.addEventListener("click", function (event) {
    var button = event.target && event.target.closest ? event.target.closest("button.copy") : null;
    if (!button) {
      return;
    }
    var text = button.getAttribute("data-copy");
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(function () {
        copied(button);
      });
      return;
    }
    var area = document.createElement("textarea"); // plain HTTP: no clipboard API
    area.value = text;
    area.setAttribute("readonly", "");
    area.className = "visually-hidden";
    document.body.appendChild(area);
    area.select();
    document.execCommand("copy");
    area.remove();
    copied(button);
  });

  document.addEventListener("click", function (event) {
    var toggle = event.target && event.target.closest
      ? event.target.closest("button.filters-toggle") : null;
    var body = document.getElementById("filter-body");
    if (!toggle || !body) {
      return;
    }
    var open = body.classList.toggle("is-open");
    toggle.setAttribute("aria-expanded", open ? "true" : "false");
  });

  // The chart's bars: their date and counts beside the chart on focus (keyboard) or on a first
  // tap (touch: the second tap opens the bucket).
  function showTip(bucket) {
    var chart = bucket.closest(".chart");
    var tip = chart ? chart.querySelector(".chart-tip") : null;
    if (tip) {
      tip.textContent = bucket.getAttribute("data-tip");
    }
  }

  document.addEventListener("focusin", function (event) {
    var bucket = event.target && event.target.closest ? event.target.closest("a.bucket") : null;
    if (bucket) {
      showTip(bucket);
    }
  });

  var tapped = null;
  document.addEventListener("pointerdown", function (event) {
    var bucket = event.target && event.target.closest ? event.target.closest("a.bucket") : null;
    if (bucket && event.pointerType === "touch" && tapped !== bucket) {
      tapped = bucket;
      showTip(bucket);
      bucket.setAttribute("data-armed", "true");
    }
  });

  document.addEventListener("click", function (event) {
    var bucket = event.target && event.target.closest ? event.target.closest("a.bucket") : null;
    if (bucket && bucket.getAttribute("data-armed") === "true") {
      bucket.removeAttribute("data-armed"); // this tap only showed the tip
      event.preventDefault();
    }
  }, true);

  document.addEventListener("keydown", function (event) {
    var open = document.querySelector("details.picker[open]");
    if (event.key === "Escape" && open) {
      open.removeAttribute("open");
      open.querySelector("summary").focus();
    }
  });

  document.addEventListener("click", function (event) {
    var target = event.target;
    var link = target && target.closest ? target.closest("a[data-load-more]") : null;
    if (!link || !plainClick(event)) {
      return;
    }
    event.preventDefault();
    if (link.getAttribute("aria-busy") !== "true") {
      loadMore(link);
    }
  });
})();
