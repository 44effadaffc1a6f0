// hardmine review page. Lists arrive as data (one JSON block per list: each item's escaped HTML, key,
// labels, metrics, bins) and are rendered in chunks near the viewport (IntersectionObserver), so the DOM
// stays small at any size. Decisions: one per (section, sample key) and one per label pair, kept in
// localStorage per data set (body[data-data]), exported and imported as review.csv (format:
// fr_data/folders/review_file.py). A decision repaints its one item. Standard DOM only, no network.
(function () {
  'use strict';
  var body = document.body;
  var CHUNK = 40;          // items per rendered chunk
  var HTML_PAGE = 500;     // items per data block of item HTML (page.py HTML_PAGE)
  var MARGIN = '1200px 0px';  // render chunks this close to the viewport, release the others
  var storeKey = 'hardmine-review:' + (body.getAttribute('data-data') || body.getAttribute('data-run'));
  var storage = openStorage();
  var decisions = load();
  var lists = [];          // every lazy list in page order
  var cursor = null;       // {list, pos}: where j/k continue from
  var observer = new IntersectionObserver(onIntersect, {rootMargin: MARGIN});
  var central = block('central') || {};
  var BUTTONS = block('buttons') || {};
  var strips = block('strips') || {};

  // ------------------------------------------------------------------------------------------- storage
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

  // A data block's value. Each block is read once (its value is kept by the caller) and its element is
  // then removed, so the page does not hold its JSON text beside the parsed values (most of the file).
  function block(name) {
    var el = document.querySelector('script[type="application/json"][data-block="' + name + '"]');
    if (!el) { return null; }
    var value = JSON.parse(el.textContent);
    el.remove();
    return value;
  }

  // ----------------------------------------------------------------------------------------- decisions
  function pairId(a, b) {
    a = Number(a); b = Number(b);
    return 'm|' + Math.min(a, b) + '|' + Math.max(a, b);
  }

  function sampleId(section, key) { return 's|' + section + '|' + key; }

  function isPair(el) { return el.hasAttribute('data-other-label'); }

  function itemId(el) {
    return isPair(el) ? pairId(el.getAttribute('data-label'), el.getAttribute('data-other-label'))
      : sampleId(el.getAttribute('data-section'), el.getAttribute('data-key'));
  }

  // The entry deciding an item: its own, else (samples) a row without a section (older review.csv files).
  function lookup(id, key) {
    return decisions[id] || (id.charAt(0) === 's' ? decisions[sampleId('', key)] : null) || null;
  }

  function action(d) { return d ? d.decision.split(':')[0] : ''; }

  function paint(el) {
    var a = action(lookup(itemId(el), el.getAttribute('data-key')));
    if (el.getAttribute('data-decided') !== a) { el.setAttribute('data-decided', a); }
    var buttons = el.querySelectorAll('[data-decision]');
    for (var i = 0; i < buttons.length; i++) {
      var pressed = String(a === buttons[i].getAttribute('data-decision'));
      if (buttons[i].getAttribute('aria-pressed') !== pressed) { buttons[i].setAttribute('aria-pressed', pressed); }
    }
  }

  function status() {
    var tally = {}, ids = Object.keys(decisions);
    ids.forEach(function (id) {
      var a = action(decisions[id]);
      var name = id.charAt(0) === 'm' && a === 'keep' ? 'keep apart' : a;
      tally[name] = (tally[name] || 0) + 1;
    });
    var parts = ['keep', 'drop', 'relabel', 'merge', 'keep apart'].filter(function (k) { return tally[k]; })
      .map(function (k) { return tally[k] + ' ' + k; });
    document.getElementById('review-status').textContent =
      ids.length + ' decided' + (parts.length ? ' (' + parts.join(', ') + ')' : '');
  }

  function decide(el, value) {
    var id = itemId(el), key = el.getAttribute('data-key');
    var shown = lookup(id, key);
    if (value === null || (shown && action(shown) === value)) {
      if (!decisions[id] && shown) {  // undoing a row without a section: it decided every section
        delete decisions[sampleId('', key)];
        save(); repaintAll(); status();
        return;
      }
      delete decisions[id];
    } else {
      var cell = value;
      if (isPair(el)) {
        cell = value + ':' + el.getAttribute('data-label') + ':' + el.getAttribute('data-other-label');
      } else if (value === 'relabel') {
        cell = 'relabel:' + el.getAttribute('data-relabel');
      }
      decisions[id] = {key: key, decision: cell, section: el.getAttribute('data-section'), path: itemPath(el)};
    }
    save();
    paint(el);
    status();
  }

  // The item's file (source_path) from its list data, '' when the shards do not name it.
  function itemPath(el) {
    var list = el.hmList;
    return (list && list.items[list.order[el.hmPos]].p) || '';
  }

  function repaintAll() {
    var rendered = document.querySelectorAll('.item[data-key]');
    for (var i = 0; i < rendered.length; i++) { paint(rendered[i]); }
  }

  // ------------------------------------------------------------------------------------------ review.csv
  function cell(text) {
    return /[",\r\n]/.test(text) ? '"' + text.replace(/"/g, '""') + '"' : text;
  }

  // With the source_path column (each decided image's file, from its card or the imported file) when any
  // decision names one, as fr_data/folders/review_file.py format_review writes it.
  function csvText() {
    var ids = Object.keys(decisions).sort();
    var paths = ids.some(function (id) { return decisions[id].path; });
    var lines = [paths ? 'key,decision,section,source_path' : 'key,decision,section'];
    ids.forEach(function (id) {
      var d = decisions[id];
      var row = [d.key, d.decision, d.section || ''].concat(paths ? [d.path || ''] : []);
      lines.push(row.map(cell).join(','));
    });
    return lines.join('\r\n') + '\r\n';
  }

  // RFC 4180 rows with the line each starts on; throws Error('line N: ...').
  function csvRows(text) {
    var rows = [], row = [], value = '', quoted = false, line = 1, start = 1;
    var i = text.charCodeAt(0) === 0xFEFF ? 1 : 0;
    for (; i < text.length; i++) {
      var ch = text.charAt(i);
      if (quoted) {
        if (ch === '"' && text.charAt(i + 1) === '"') { value += '"'; i++; } else if (ch === '"') {
          quoted = false;
        } else { value += ch; if (ch === '\n') { line++; } }
      } else if (ch === '"' && value === '') {
        quoted = true;
      } else if (ch === ',') {
        row.push(value); value = '';
      } else if (ch === '\r' || ch === '\n') {
        if (ch === '\r' && text.charAt(i + 1) === '\n') { i++; }
        row.push(value); rows.push({cells: row, line: start});
        row = []; value = ''; line++; start = line;
      } else if (ch === '\0') {
        throw new Error('line ' + line + ': a NUL character');
      } else {
        value += ch;
      }
    }
    if (quoted) { throw new Error('line ' + start + ': unterminated quote'); }
    if (value !== '' || row.length) { row.push(value); rows.push({cells: row, line: start}); }
    return rows;
  }

  var DECISION = /^(?:(keep|drop)|relabel:-?\d+|(merge|keep):(-?\d+):(-?\d+))$/;

  // review.csv text -> {id: entry}, validated as fr_data/folders/review_file.py does.
  function parseReview(text) {
    var rows = csvRows(text), out = {}, seen = {};
    var header = rows.length ? rows[0].cells.map(function (c) { return c.trim(); }).join(',') : '';
    var base = header.replace(/,source_path$/, '');  // the optional file column: kept with the decision
    if (base !== 'key,decision,section' && base !== 'key,decision') {
      throw new Error("line 1: header must be 'key,decision,section' or 'key,decision' (optionally + ',source_path')");
    }
    var width = header.split(',').length, hasSection = base.split(',').length > 2, hasPath = base !== header;
    rows.slice(1).forEach(function (r) {
      var c = r.cells, where = 'line ' + r.line + ': ';
      if (c.length === 1 && c[0] === '') { return; }
      if (c.length !== width) { throw new Error(where + 'expected ' + width + ' cells, got ' + c.length); }
      var key = c[0], decision = c[1].trim(), section = hasSection ? c[2].trim() : '';
      var m = DECISION.exec(decision);
      if (!key) { throw new Error(where + 'empty key'); }
      if (!m) { throw new Error(where + 'decision ' + JSON.stringify(decision) + ' is not keep, drop, relabel:L, merge:A:B or keep:A:B'); }
      if (section && !/^[a-z][a-z0-9_-]*$/.test(section)) { throw new Error(where + 'not a section name'); }
      if (m[3] !== undefined && Number(m[3]) === Number(m[4])) { throw new Error(where + 'merges a label with itself'); }
      var id = m[3] !== undefined ? pairId(m[3], m[4]) : sampleId(section, key);
      var ident = decision.indexOf('relabel:') === 0 ? 'r|' + key : id;
      if (seen[ident]) { throw new Error(where + 'already decided on line ' + seen[ident]); }
      seen[ident] = r.line;
      out[id] = {key: key, decision: decision, section: section, path: hasPath ? c[width - 1] : ''};
    });
    return out;
  }

  // Merge a review.csv into the decisions (the file wins); returns how many rows it held.
  function importText(text) {
    var rows = parseReview(text), ids = Object.keys(rows);
    ids.forEach(function (id) { decisions[id] = rows[id]; });
    save();
    if (body.classList.contains('hide-decided')) { refilterAll(); } else { repaintAll(); }
    status();
    return ids.length;
  }

  function say(text, bad) {
    var el = document.getElementById('import-status');
    el.textContent = text;
    el.className = bad ? 'bad' : '';
    el.hidden = false;
  }

  function importFile(file) {
    var reader = new FileReader();
    reader.onload = function () {
      try {
        say('imported ' + importText(String(reader.result)) + ' decision(s) from ' + file.name, false);
      } catch (e) {
        say(file.name + ': ' + e.message + ' (nothing imported)', true);
      }
    };
    reader.readAsText(file);
  }

  function exportCsv() {
    var url = URL.createObjectURL(new Blob([csvText()], {type: 'text/csv'}));
    var a = document.createElement('a');
    a.href = url;
    a.download = 'review.csv';
    body.appendChild(a);
    a.click();
    setTimeout(function () { URL.revokeObjectURL(url); a.remove(); }, 1000);
  }

  // Decisions the page was built with (hardmine report --decisions): merged once per file content.
  function prefill() {
    var data = block('prefill');
    if (!data) { return; }
    var sig = String(data.csv.length), h = 2166136261;
    for (var i = 0; i < data.csv.length; i++) { h = Math.imul(h ^ data.csv.charCodeAt(i), 16777619) >>> 0; }
    sig += ':' + h;
    if (storage && storage.getItem(storeKey + ':prefill') === sig) { return; }
    try { importText(data.csv); } catch (e) { say('decisions built into the page: ' + e.message, true); }
    if (storage) { storage.setItem(storeKey + ':prefill', sig); }
  }

  // ------------------------------------------------------------------------------------------ lazy lists
  // An item's decision controls, from its data-decisions ("value" or "value:button name").
  function addButtons(el) {
    var box = document.createElement('div');
    box.className = 'decide';
    el.getAttribute('data-decisions').split(' ').forEach(function (d) {
      var parts = d.split(':'), b = document.createElement('button');
      b.type = 'button';
      b.setAttribute('data-decision', parts[0]);
      b.setAttribute('aria-pressed', 'false');
      b.textContent = BUTTONS[parts[1] || parts[0]] || parts[0];
      box.appendChild(b);
    });
    el.appendChild(box);
  }

  // A label's central images, from the strips data block (HTML page.py built once per label).
  var STRIP = /<div class="imgs ([a-z]+)" data-central="([^"]*)"><\/div>/g;

  function withStrips(text) {
    return text.replace(STRIP, function (all, size, label) {
      return '<div class="imgs ' + size + '">' + (strips[label] || '<span class="none">no image</span>') + '</div>';
    });
  }

  function List(el) {
    this.el = el;
    this.name = el.getAttribute('data-list');
    this.grid = el.getAttribute('data-grid');
    this.decides = el.getAttribute('data-decides');
    this.section = el.closest('section').id;
    this.items = block('list:' + this.name) || [];
    this.pages = [];  // parsed blocks of item HTML (HTML_PAGE items each, in page.py), parsed when first needed
    this.bar = el.previousElementSibling;
    this.order = [];
    this.chunks = [];
    this.estimate = 0;
  }

  List.prototype.html = function (i) {
    var p = Math.floor(i / HTML_PAGE);
    if (!this.pages[p]) { this.pages[p] = block('html:' + this.name + ':' + p); }
    return this.pages[p][i - p * HTML_PAGE];
  };

  List.prototype.size = function (c) { return Math.min(CHUNK, this.order.length - c * CHUNK); };

  // Decided keys of this list's section (and of rows without a section), label pairs: for filtering.
  List.prototype.decidedSets = function () {
    var own = {}, any = {}, section = this.section;
    Object.keys(decisions).forEach(function (id) {
      var d = decisions[id];
      if (id.charAt(0) === 'm') { own[id] = true; } else if (d.section === section) { own[d.key] = true; }
      else if (!d.section) { any[d.key] = true; }
    });
    return {own: own, any: any};
  };

  List.prototype.decided = function (item, sets) {
    if (!this.decides) { return false; }
    if (this.decides === 'pair') { return !!sets.own[pairId(item.l[0], item.l[1])]; }
    return !!(sets.own[item.k] || sets.any[item.k]);
  };

  List.prototype.render = function (c) {
    var div = this.chunks[c];
    if (div.done) { return div; }
    var start = c * CHUNK, parts = [];
    for (var i = start; i < start + this.size(c); i++) { parts.push(this.html(this.order[i])); }
    div.innerHTML = withStrips(parts.join(''));
    for (var j = 0; j < div.children.length; j++) {
      var el = div.children[j];
      el.hmList = this;
      el.hmPos = start + j;
      if (el.hasAttribute('data-decisions')) { addButtons(el); paint(el); }
    }
    div.style.height = '';
    div.done = true;
    return div;
  };

  function release(div) {
    if (!div.done || div.contains(document.activeElement)) { return; }
    var list = div.hmList, height = div.offsetHeight;
    if (list.size(div.hmChunk) === CHUNK) { list.estimate = height; }
    div.style.height = height + 'px';
    div.textContent = '';
    div.done = false;
  }

  function onIntersect(entries) {
    entries.forEach(function (e) {
      if (e.isIntersecting) { e.target.hmList.render(e.target.hmChunk); } else { release(e.target); }
    });
  }

  // Whether the list reaches the viewport's neighbourhood (its first chunk is then rendered at once).
  List.prototype.near = function () {
    var r = this.el.getBoundingClientRect();
    return r.top < window.innerHeight + 1200 && r.bottom > -1200;
  };

  // Replace the chunks (after filtering): empty placeholders sized by estimate; the first one rendered at
  // once when the list is near the viewport (or not measured yet), the others by the observer.
  List.prototype.build = function (near) {
    this.chunks.forEach(function (div) { observer.unobserve(div); });
    this.el.textContent = '';
    this.chunks = [];
    var frag = document.createDocumentFragment();
    for (var c = 0; c * CHUNK < this.order.length; c++) {
      var div = document.createElement('div');
      div.className = this.grid + ' chunk';
      div.hmList = this;
      div.hmChunk = c;
      this.chunks.push(div);
      frag.appendChild(div);
    }
    this.el.appendChild(frag);
    if (this.chunks.length && (near || !this.estimate)) { this.render(0); }
    this.bar.querySelector('.shown').textContent = this.order.length + ' of ' + this.items.length + ' shown';
  };

  List.prototype.place = function () {
    if (!this.chunks.length) { return; }
    if (!this.estimate) { this.estimate = this.chunks[0].offsetHeight * CHUNK / this.size(0); }
    for (var c = 0; c < this.chunks.length; c++) {
      if (!this.chunks[c].done) { this.chunks[c].style.height = Math.round(this.estimate * this.size(c) / CHUNK) + 'px'; }
      observer.observe(this.chunks[c]);
    }
  };

  List.prototype.state = function () {
    var f = {};
    this.bar.querySelectorAll('[data-filter]').forEach(function (el) { f[el.getAttribute('data-filter')] = el.value.trim(); });
    if (body.classList.contains('hide-decided') && f.show !== 'decided') { f.show = 'undecided'; }
    return f;
  };

  List.prototype.filter = function (near) {
    var f = this.state(), items = this.items, out = [];
    var lo = parseFloat(f.min), hi = parseFloat(f.max), metric = f.metric === '' ? -1 : Number(f.metric);
    var sets = f.show ? this.decidedSets() : null;
    for (var i = 0; i < items.length; i++) {
      var it = items[i];
      if (sets && (f.show === 'decided') !== this.decided(it, sets)) { continue; }
      if (metric >= 0 && ((!isNaN(lo) && !(it.m[metric] >= lo)) || (!isNaN(hi) && !(it.m[metric] <= hi)))) { continue; }
      if (f.label && it.l.indexOf(f.label) < 0) { continue; }
      if (f.bin && it.f.indexOf(f.bin) < 0) { continue; }
      out.push(i);
    }
    if (f.sort) {
      var by = Number(f.sort.split(':')[0]), dir = Number(f.sort.split(':')[1]);
      out.sort(function (a, b) {
        var x = items[a].m[by], y = items[b].m[by];
        if (x === null || y === null) { return (x === null) - (y === null) || a - b; }
        return (x - y) * dir || a - b;
      });
    }
    this.order = out;
    this.build(near !== false);
  };

  List.prototype.fillBins = function () {
    var seen = {}, select = this.bar.querySelector('[data-filter="bin"]');
    this.items.forEach(function (it) { it.f.forEach(function (b) { seen[b] = true; }); });
    Object.keys(seen).sort().forEach(function (b) {
      var o = document.createElement('option');
      o.value = b;
      o.textContent = b;
      select.appendChild(o);
    });
    select.hidden = !Object.keys(seen).length;
  };

  function refilterAll() {
    var near = lists.map(function (l) { return l.near(); });  // read the layout once, before any change
    lists.forEach(function (l, i) { l.filter(near[i]); });
    lists.forEach(function (l) { l.place(); });
  }

  // ------------------------------------------------------------------------------------------ navigation
  function reviewable() { return lists.filter(function (l) { return l.decides; }); }

  function hiddenEl(el) {
    return body.classList.contains('hide-decided') && (el.getAttribute('data-decided') || '') !== '';
  }

  function elementAt(list, pos) {
    return list.render(Math.floor(pos / CHUNK)).children[pos % CHUNK];
  }

  function focusAt(list, pos) {
    var el = elementAt(list, pos);
    cursor = {list: list, pos: pos};
    el.focus({preventScroll: true});
    el.scrollIntoView({block: 'center'});
  }

  function move(step) {
    var all = reviewable();
    if (!all.length) { return; }
    var li = cursor ? all.indexOf(cursor.list) : 0, pos = cursor ? cursor.pos + step : (step > 0 ? 0 : -1);
    if (li < 0) { li = 0; }
    for (var guard = 0; guard < 100000 && li >= 0 && li < all.length; guard++) {
      var n = all[li].order.length;
      if (pos >= 0 && pos < n) {
        if (!hiddenEl(elementAt(all[li], pos))) { focusAt(all[li], pos); return; }
        pos += step;
      } else if (pos >= n) {
        li += 1; pos = 0;
      } else {
        li -= 1; pos = li >= 0 ? all[li].order.length - 1 : 0;
      }
    }
  }

  // Continue from the first reviewable list at or after section `id` (nav links, n/p).
  function startAt(id) {
    var all = reviewable(), section = document.getElementById(id);
    if (!section) { return; }
    var next = all.filter(function (l) {
      var s = document.getElementById(l.section);
      return s === section || (section.compareDocumentPosition(s) & Node.DOCUMENT_POSITION_FOLLOWING);
    })[0];
    cursor = next ? {list: next, pos: -1} : null;
    if (document.activeElement && document.activeElement !== body) { document.activeElement.blur(); }
  }

  function jumpSection(step) {
    var all = reviewable();
    if (!all.length) { return; }
    var li = cursor ? all.indexOf(cursor.list) + step : (step > 0 ? 0 : all.length - 1);
    li = Math.max(0, Math.min(all.length - 1, li));
    cursor = {list: all[li], pos: -1};
    document.getElementById(all[li].section).scrollIntoView();
    move(1);
  }

  // The sticky header's height as --header-h (page.css: jump targets stop below it); it wraps to two
  // rows or more on narrow screens and grows with the import and storage notes.
  function trackHeader() {
    var header = document.querySelector('header');
    if (!header) { return; }
    var set = function () {
      document.documentElement.style.setProperty('--header-h', header.getBoundingClientRect().height + 'px');
    };
    set();
    if (window.ResizeObserver) { new ResizeObserver(set).observe(header); }
  }

  // ------------------------------------------------------------------------------------------ overlays
  function openOverlay(id) {
    document.querySelectorAll('.overlay').forEach(function (o) { o.hidden = o.id !== id; });
  }

  function closeOverlays() {
    var open = false;
    document.querySelectorAll('.overlay').forEach(function (o) { open = open || !o.hidden; o.hidden = true; });
    return open;
  }

  function zoom(img) {
    var big = document.getElementById('zoom-img'), more = document.getElementById('zoom-more');
    big.src = img.getAttribute('src');
    big.alt = img.alt;
    document.getElementById('zoom-caption').textContent = img.title;
    more.textContent = '';
    var others = (central[img.getAttribute('data-label')] || []).filter(function (c) {
      return c[0] && c[0] !== img.getAttribute('src');
    });
    var head = document.createElement('div');
    head.textContent = others.length ? 'more images of label ' + img.getAttribute('data-label') : 'no other image of this label';
    more.appendChild(head);
    others.forEach(function (c) {
      var m = document.createElement('img');
      m.src = c[0];
      m.alt = c[1];
      m.title = c[1];
      more.appendChild(m);
    });
    openOverlay('zoom');
  }

  // ------------------------------------------------------------------------------------------ events
  var KEYS = {a: 'keep', d: 'drop', m: 'merge', r: 'relabel', s: 'keep', u: null};

  document.addEventListener('click', function (event) {
    var t = event.target;
    var button = t.closest('[data-decision]');
    if (button) { decide(button.closest('.item'), button.getAttribute('data-decision')); return; }
    if (t.matches('img.thumb[data-label]')) { zoom(t); return; }
    if (t.closest('[data-close]') || t.classList.contains('overlay')) { closeOverlays(); return; }
    var link = t.closest('a[href^="#"]');
    if (link) { startAt(link.getAttribute('href').slice(1)); }
  });

  document.addEventListener('focusin', function (event) {
    var el = event.target.closest && event.target.closest('.item');
    if (el && el.hmList) { cursor = {list: el.hmList, pos: el.hmPos}; }
  });

  document.addEventListener('keydown', function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey || /INPUT|TEXTAREA|SELECT/.test(event.target.tagName)) {
      return;
    }
    var key = event.key;
    if (key === 'Escape') { closeOverlays(); return; }
    if (key === '?') { openOverlay('help'); return; }
    if (key === 'j' || key === 'k') { closeOverlays(); move(key === 'j' ? 1 : -1); return; }
    if (key === 'n' || key === 'p') { closeOverlays(); jumpSection(key === 'n' ? 1 : -1); return; }
    var item = document.activeElement && document.activeElement.closest && document.activeElement.closest('.item');
    if (!item) { return; }
    if (key === 'z') { var img = item.querySelector('img.thumb[data-label]'); if (img) { zoom(img); } return; }
    if (!(key in KEYS)) { return; }
    var decision = KEYS[key];
    if (key === 'a' && isPair(item)) { return; }  // on a label pair, "keep" is "keep apart": s
    if (key === 's' && !isPair(item)) { return; }
    if (decision && !item.querySelector('[data-decision="' + decision + '"]')) { return; }
    decide(item, decision);
    if (decision) { move(1); }
  });

  document.addEventListener('input', function (event) {
    var bar = event.target.closest('.filters');
    if (!bar) { return; }
    lists.forEach(function (l) { if (l.bar === bar) { l.filter(); l.place(); } });
  });

  document.getElementById('export').addEventListener('click', exportCsv);
  document.getElementById('import').addEventListener('click', function () { document.getElementById('import-file').click(); });
  document.getElementById('import-file').addEventListener('change', function (event) {
    if (event.target.files.length) { importFile(event.target.files[0]); }
    event.target.value = '';
  });
  document.getElementById('help-button').addEventListener('click', function () { openOverlay('help'); });
  document.getElementById('clear').addEventListener('click', function () {
    if (window.confirm('Forget every decision made on this page?')) { decisions = {}; save(); repaintAll(); status(); }
  });
  document.getElementById('hide-decided').addEventListener('change', function (event) {
    body.classList.toggle('hide-decided', event.target.checked);
    refilterAll();
  });

  // For scripts and tests: the CSV the export button would write, the decisions, import, list sizes.
  window.hardmineReview = {
    ready: 0,  // performance.now() when the page became interactive (set below)
    csv: csvText,
    decisions: function () { return JSON.parse(JSON.stringify(decisions)); },
    importCsv: importText,
    shown: function (name) {
      var l = lists.filter(function (x) { return x.name === name; })[0];
      return l ? l.order.length : 0;
    }
  };

  trackHeader();
  document.querySelectorAll('.lazy[data-list]').forEach(function (el) { lists.push(new List(el)); });
  prefill();
  lists.forEach(function (l) { l.fillBins(); l.filter(); });
  lists.forEach(function (l) { l.place(); });
  status();
  window.hardmineReview.ready = performance.now();
}());
