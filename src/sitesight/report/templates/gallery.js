// Error galleries: filter cards by type, class, camera, size and minimum score; move between the
// shown cards with the arrow keys (or j / k), Enter enlarges the focused card, Escape shrinks it.
// Plain DOM, no library, nothing fetched.
(function () {
  "use strict";
  function setup(gallery) {
    var cards = Array.prototype.slice.call(gallery.querySelectorAll(".gcard"));
    var selects = Array.prototype.slice.call(gallery.querySelectorAll("select[data-filter]"));
    var score = gallery.querySelector("input[data-filter=score]");
    var scoreOut = gallery.querySelector("[data-score-value]");
    var count = gallery.querySelector("[data-count]");
    function apply() {
      var wanted = {};
      selects.forEach(function (s) { wanted[s.getAttribute("data-filter")] = s.value; });
      var minScore = score ? parseFloat(score.value) : 0;
      if (scoreOut) { scoreOut.textContent = minScore.toFixed(2); }
      var shown = 0;
      cards.forEach(function (c) {
        var ok = Object.keys(wanted).every(function (k) { return !wanted[k] || c.getAttribute("data-" + k) === wanted[k]; });
        var s = c.getAttribute("data-score");
        if (ok && minScore > 0 && s !== "") { ok = parseFloat(s) >= minScore; }
        c.hidden = !ok;
        if (ok) { shown += 1; }
      });
      count.textContent = shown + " of " + cards.length + " shown";
      gallery.setAttribute("data-shown", String(shown));
    }
    selects.forEach(function (s) { s.addEventListener("change", apply); });
    if (score) { score.addEventListener("input", apply); score.addEventListener("change", apply); }
    gallery.addEventListener("keydown", function (ev) {
      var card = ev.target.closest ? ev.target.closest(".gcard") : null;
      if (!card) { return; }
      var visible = cards.filter(function (c) { return !c.hidden; });
      var i = visible.indexOf(card);
      var next = null;
      if (ev.key === "ArrowRight" || ev.key === "ArrowDown" || ev.key === "j") { next = visible[Math.min(i + 1, visible.length - 1)]; }
      else if (ev.key === "ArrowLeft" || ev.key === "ArrowUp" || ev.key === "k") { next = visible[Math.max(i - 1, 0)]; }
      else if (ev.key === "Home") { next = visible[0]; }
      else if (ev.key === "End") { next = visible[visible.length - 1]; }
      else if (ev.key === "Enter") { card.classList.toggle("big"); ev.preventDefault(); return; }
      else if (ev.key === "Escape") { card.classList.remove("big"); return; }
      if (next) { ev.preventDefault(); next.focus(); }
    });
    apply();
  }
  Array.prototype.forEach.call(document.querySelectorAll("[data-gallery]"), setup);
})();
