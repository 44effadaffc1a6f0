// hardmine review page: decisions per item, kept in localStorage per run, exported as review.csv.
// Standard DOM only (no framework, no network). Format of review.csv: fr_data/folders/review_file.py.
(function () {
  'use strict';
  var body = document.body;
  var storeKey = 'hardmine-review:' + body.getAttribute('data-run');
  var items = Array.prototype.slice.call(document.querySelectorAll('.item[data-key]'));
  var storage = openStorage();
  var decisions = load();

  function openStorage() {
    try {
      var s = window.localStorage;
      s.setItem(storeKey + ':probe', '1');
      s.removeItem(storeKey + ':probe');
      return s;
    } catch (e) {
      document.getElementById('storage-warning').hidden = false;
      return null;
    }
  }

  function load() {
    if (!storage) { return {}; }
    try { return JSON.parse(storage.getItem(storeKey) || '{}') || {}; } catch (e) { return {}; }
  }

  function save() {
    if (storage) { storage.setItem(storeKey, JSON.stringify(decisions)); }
  }

  function isMerge(item) { return item.hasAttribute('data-other-label'); }

  // One decision per sample key (an image shown in two sections shares it) and one per label pair.
  function idOf(item) {
    if (isMerge(item)) {
      return 'merge:' + item.getAttribute('data-label') + ':' + item.getAttribute('data-other-label');
    }
    return 'sample:' + item.getAttribute('data-key');
  }

  function paint() {
    var tally = {keep: 0, drop: 0, merge: 0};
    items.forEach(function (item) {
      var d = decisions[idOf(item)];
      item.setAttribute('data-decided', d ? d.decision : '');
      item.querySelectorAll('[data-decision]').forEach(function (b) {
        b.setAttribute('aria-pressed', String(!!d && d.decision === b.getAttribute('data-decision')));
      });
    });
    Object.keys(decisions).forEach(function (id) { tally[decisions[id].decision] += 1; });
    var n = Object.keys(decisions).length;
    document.getElementById('review-status').textContent = n + ' decided' + (n ? ' (' +
      ['keep', 'drop', 'merge'].filter(function (k) { return tally[k]; })
        .map(function (k) { return tally[k] + ' ' + k; }).join(', ') + ')' : '');
  }

  function decide(item, decision) {
    var id = idOf(item);
    if (!decision || (decisions[id] && decisions[id].decision === decision)) {
      delete decisions[id];
    } else {
      decisions[id] = {key: item.getAttribute('data-key'), decision: decision};
    }
    save();
    paint();
  }

  function cell(text) {
    return /[",\r\n]/.test(text) ? '"' + text.replace(/"/g, '""') + '"' : text;
  }

  // review.csv: header key,decision; keep/drop for samples, merge:A:B / keep:A:B for label pairs.
  function csvText() {
    var lines = ['key,decision'];
    Object.keys(decisions).sort().forEach(function (id) {
      var d = decisions[id];
      var value = id.indexOf('merge:') === 0 ? d.decision + id.slice('merge'.length) : d.decision;
      lines.push(cell(d.key) + ',' + cell(value));
    });
    return lines.join('\r\n') + '\r\n';
  }

  function exportCsv() {
    var url = URL.createObjectURL(new Blob([csvText()], {type: 'text/csv'}));
    var a = document.createElement('a');
    a.href = url;
    a.download = 'review.csv';
    document.body.appendChild(a);
    a.click();
    setTimeout(function () { URL.revokeObjectURL(url); a.remove(); }, 1000);
  }

  function visibleItems() {
    return items.filter(function (item) { return item.offsetParent !== null; });
  }

  function move(step) {
    var list = visibleItems();
    if (!list.length) { return; }
    var at = list.indexOf(document.activeElement.closest ? document.activeElement.closest('.item') : null);
    var next = list[Math.min(list.length - 1, Math.max(0, at < 0 ? 0 : at + step))];
    next.focus();
    next.scrollIntoView({block: 'nearest'});
  }

  var KEYS = {a: 'keep', d: 'drop', m: 'merge', u: null};

  document.addEventListener('click', function (event) {
    var button = event.target.closest('[data-decision]');
    if (button) { decide(button.closest('.item'), button.getAttribute('data-decision')); }
  });

  document.addEventListener('keydown', function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey || /INPUT|TEXTAREA|SELECT/.test(event.target.tagName)) {
      return;
    }
    if (event.key === 'j' || event.key === 'k') { move(event.key === 'j' ? 1 : -1); return; }
    var item = document.activeElement && document.activeElement.closest &&
      document.activeElement.closest('.item');
    if (!item || !(event.key in KEYS)) { return; }
    var decision = KEYS[event.key];
    if (decision && !item.querySelector('[data-decision="' + decision + '"]')) { return; }
    decide(item, decision === null ? null : decision);
    if (decision) { move(1); }
  });

  document.getElementById('export').addEventListener('click', exportCsv);
  document.getElementById('clear').addEventListener('click', function () {
    if (window.confirm('Forget every decision made on this page?')) { decisions = {}; save(); paint(); }
  });
  document.getElementById('hide-decided').addEventListener('change', function (event) {
    body.classList.toggle('hide-decided', event.target.checked);
  });

  // For scripts and tests: the CSV the export button would download, and the decisions.
  window.hardmineReview = {csv: csvText, decisions: function () { return JSON.parse(JSON.stringify(decisions)); }};
  paint();
}());
