// taskhost dashboard: a page whose <main> has data-live re-fetches itself
// every few seconds and swaps the main content, unless the viewer is
// typing or a control inside it has focus.
(function () {
  "use strict";
  var main = document.querySelector("main[data-live]");
  if (!main) return;
  var every = parseInt(main.getAttribute("data-live"), 10) || 2000;
  function busy() {
    var a = document.activeElement;
    return a && a !== document.body && main.contains(a) && a.tagName !== "A";
  }
  function refresh() {
    if (document.hidden || busy()) return setTimeout(refresh, every);
    fetch(location.href, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (text) {
        if (text) {
          var doc = new DOMParser().parseFromString(text, "text/html");
          var fresh = doc.querySelector("main[data-live]");
          if (fresh) main.innerHTML = fresh.innerHTML;
        }
      })
      .catch(function () {})
      .then(function () { setTimeout(refresh, every); });
  }
  setTimeout(refresh, every);
})();
// "Copy" buttons: data-copy names the element whose text goes to the clipboard.
document.addEventListener("click", function (e) {
  var b = e.target.closest && e.target.closest("button[data-copy]");
  if (!b || !navigator.clipboard) return;
  var from = document.getElementById(b.getAttribute("data-copy"));
  if (from) navigator.clipboard.writeText(from.textContent).then(function () {
    b.textContent = "Copied";
  });
});
