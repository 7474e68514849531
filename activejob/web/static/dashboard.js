/* activejob dashboard: live updates over the WebSocket, polling when it is down.
 * Plain JavaScript, no build step. Never puts data into the page as HTML: values go in
 * with textContent; whole fragments come server-rendered (escaped) from the server. */
(function () {
  'use strict';

  var body = document.body;
  var BASE = body.dataset.base || '';
  var CSRF = body.dataset.csrf || '';
  var POLL_MS = Math.max(1000, parseFloat(body.dataset.poll || '3') * 1000);
  var PAGE = body.dataset.page || '';
  var STATUS_EVENTS = { enqueued: 1, started: 1, waiting: 1, retrying: 1, completed: 1, failed: 1, cancelled: 1, requeued: 1, deleted: 1,
                        batch_failed: 1, batch_finished: 1, batch_cancelled: 1 };
  var FINAL = { completed: 1, failed: 1, cancelled: 1 };
  var BACK_TO_PENDING = { retrying: 1, requeued: 1 };
  var LABELS = {};
  try { LABELS = JSON.parse(body.dataset.labels || '{}') || {}; } catch (e) { LABELS = {}; }

  // -- time ------------------------------------------------------------------------

  function fmtDuration(s) {
    if (s < 1) return Math.max(0, Math.round(s * 1000)) + ' ms';
    if (s < 60) return s.toFixed(1) + ' s';
    var m = Math.floor(s / 60), sec = Math.floor(s % 60);
    if (m < 60) return m + ' min ' + sec + ' s';
    return Math.floor(m / 60) + ' h ' + (m % 60) + ' min';
  }

  function relative(date) {
    var diff = (Date.now() - date.getTime()) / 1000;
    var future = diff < 0, a = Math.abs(diff), text;
    if (a < 5) return future ? 'in a moment' : 'just now';
    if (a < 60) text = Math.floor(a) + ' s';
    else if (a < 3600) text = Math.floor(a / 60) + ' min';
    else if (a < 86400) text = Math.floor(a / 3600) + ' h';
    else return date.toLocaleString();
    return future ? 'in ' + text : text + ' ago';
  }

  function pad(n) { return (n < 10 ? '0' : '') + n; }

  function utc(d) {  // the exact time, as the server writes it
    return d.getUTCFullYear() + '-' + pad(d.getUTCMonth() + 1) + '-' + pad(d.getUTCDate()) + ' ' +
      pad(d.getUTCHours()) + ':' + pad(d.getUTCMinutes()) + ':' + pad(d.getUTCSeconds()) + ' UTC';
  }

  function refreshTimes(root) {
    (root || document).querySelectorAll('time[datetime]').forEach(function (t) {
      var d = new Date(t.getAttribute('datetime'));
      if (isNaN(d)) return;
      t.textContent = relative(d);
      t.title = utc(d);
    });
    (root || document).querySelectorAll('[data-started]').forEach(function (el) {
      var d = new Date(el.dataset.started);
      if (!isNaN(d)) el.textContent = fmtDuration((Date.now() - d.getTime()) / 1000);
    });
  }

  // -- watched jobs and toasts -----------------------------------------------------------

  var Watch = {
    key: 'activejob.watched',
    all: function () {
      try { return JSON.parse(localStorage.getItem(this.key) || '[]').filter(Number.isInteger); } catch (e) { return []; }
    },
    save: function (ids) { try { localStorage.setItem(this.key, JSON.stringify(ids.slice(-50))); } catch (e) { /* private mode */ } },
    has: function (id) { return this.all().indexOf(id) >= 0; },
    add: function (id) { var ids = this.all().filter(function (x) { return x !== id; }); ids.push(id); this.save(ids); },
    remove: function (id) { this.save(this.all().filter(function (x) { return x !== id; })); }
  };

  function toast(kind, title, text, href) {
    var box = document.getElementById('toasts');
    if (!box) return;
    var el = document.createElement('div');
    el.className = 'toast toast-' + kind;
    el.setAttribute('role', 'status');
    var t = document.createElement('div'); t.className = 'toast-title'; t.textContent = title; el.appendChild(t);
    if (text) { var p = document.createElement('div'); p.className = 'toast-text'; p.textContent = text; el.appendChild(p); }
    el.addEventListener('click', function () { if (href) location.href = href; else el.remove(); });
    box.appendChild(el);
    setTimeout(function () { el.remove(); }, 7000);
  }

  function labelOf(ev) {  // the job type's label when it has one, else its name: the same on every page
    if (ev.name && Object.prototype.hasOwnProperty.call(LABELS, ev.name)) return LABELS[ev.name];
    if (String(body.dataset.jobId) === String(ev.job_id) && body.dataset.jobLabel) return body.dataset.jobLabel;
    return ev.name || 'Job';
  }

  var toasted = {};
  function maybeToast(ev) {
    if (!FINAL[ev.event] || !Watch.has(ev.job_id) || toasted[ev.id]) return;
    toasted[ev.id] = 1;
    var title = labelOf(ev) + ' #' + ev.job_id + ' ' + ev.event;
    var text = ev.event === 'failed' ? (ev.data && ev.data.error) || '' : ev.event === 'cancelled' ? (ev.data && ev.data.reason) || '' : '';
    toast(ev.event === 'completed' ? 'completed' : ev.event === 'failed' ? 'failed' : 'warn', title, text, BASE + '/jobs/' + ev.job_id);
    Watch.remove(ev.job_id);
    syncWatchButtons();
  }

  function syncWatchButtons() {
    document.querySelectorAll('[data-watch]').forEach(function (btn) {
      var on = Watch.has(parseInt(btn.dataset.watch, 10));
      btn.setAttribute('aria-pressed', on ? 'true' : 'false');
      btn.textContent = on ? '★ Watching' : '☆ Watch';
      btn.title = on ? 'You get a notice when this job finishes' : 'Get a notice when this job finishes';
    });
  }

  // -- the live connection -------------------------------------------------------------

  function Live() {
    this.subs = {};          // key -> {spec, cursor}
    this.handlers = [];
    this.seen = new Set();
    this.seenOrder = [];
    this.ws = null;
    this.backoff = 500;
    this.pollTimer = null;
    this.reconnectTimer = null;
    this.startCursor = parseInt(body.dataset.cursor || '0', 10) || 0;
  }

  Live.keyOf = function (spec) {
    if (spec.job_id != null) return 'job:' + spec.job_id;
    if (spec.batch_id != null) return 'batch:' + spec.batch_id;
    if (spec.owner != null) return 'owner:' + spec.owner;
    return 'all';
  };

  Live.prototype.on = function (fn) { this.handlers.push(fn); };

  Live.prototype.setState = function (state, label) {
    var el = document.getElementById('conn');
    if (!el) return;
    el.dataset.state = state;
    el.querySelector('.conn-label').textContent = label;
    body.dataset.live = state;
  };

  Live.prototype.subscribe = function (spec) {
    var key = Live.keyOf(spec);
    if (this.subs[key]) return;
    this.subs[key] = { spec: spec, cursor: this.startCursor };
    this.sendSubscribe(key);
  };

  Live.prototype.sendSubscribe = function (key) {
    if (!this.ws || this.ws.readyState !== 1) return;
    var sub = this.subs[key], msg = { action: 'subscribe', since: sub.cursor };
    if (sub.spec.job_id != null) msg.job_id = sub.spec.job_id;
    else if (sub.spec.batch_id != null) msg.batch_id = sub.spec.batch_id;
    else if (sub.spec.owner != null) msg.owner = sub.spec.owner;
    this.ws.send(JSON.stringify(msg));
  };

  Live.prototype.connect = function () {
    var self = this;
    clearTimeout(this.reconnectTimer);
    var url = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + BASE + '/api/ws';
    var ws;
    try { ws = new WebSocket(url); } catch (e) { this.dropped(); return; }
    this.ws = ws;
    ws.onopen = function () {
      self.backoff = 500;
      self.setState('live', 'Live');
      self.stopPolling();
      Object.keys(self.subs).forEach(function (k) { self.sendSubscribe(k); });
    };
    ws.onmessage = function (m) {
      var msg;
      try { msg = JSON.parse(m.data); } catch (e) { return; }
      if (msg.type === 'event') self.deliver(msg, msg.subscription);
    };
    ws.onclose = function () { if (self.ws === ws) self.dropped(); };
    ws.onerror = function () { try { ws.close(); } catch (e) { /* already closed */ } };
  };

  Live.prototype.dropped = function () {
    var self = this;
    this.ws = null;
    this.setState('polling', 'Reconnecting…');
    this.startPolling();
    var wait = this.backoff * (1 + Math.random() * 0.3);
    this.backoff = Math.min(this.backoff * 2, 15000);
    this.reconnectTimer = setTimeout(function () { self.connect(); }, wait);
  };

  Live.prototype.deliver = function (ev, key) {
    var sub = key && this.subs[key];
    if (sub && typeof ev.cursor === 'number' && ev.cursor > sub.cursor) sub.cursor = ev.cursor;
    if (this.seen.has(ev.id)) return;   // the same event via two subscriptions, or a replay
    this.seen.add(ev.id);
    this.seenOrder.push(ev.id);
    if (this.seenOrder.length > 5000) this.seen.delete(this.seenOrder.shift());
    this.handlers.forEach(function (fn) { try { fn(ev); } catch (e) { console.error(e); } });
  };

  Live.prototype.startPolling = function () {
    var self = this;
    if (this.pollTimer) return;
    var tick = function () {
      Object.keys(self.subs).forEach(function (key) {
        var sub = self.subs[key], q = 'after=' + sub.cursor;
        if (sub.spec.job_id != null) q += '&job_id=' + encodeURIComponent(sub.spec.job_id);
        else if (sub.spec.batch_id != null) q += '&batch_id=' + encodeURIComponent(sub.spec.batch_id);
        else if (sub.spec.owner != null) q += '&owner=' + encodeURIComponent(sub.spec.owner);
        fetch(BASE + '/api/events?' + q, { credentials: 'same-origin', headers: { Accept: 'application/json' } })
          .then(function (r) { if (!r.ok) throw new Error(r.status); return r.json(); })
          .then(function (data) {
            if (self.ws && self.ws.readyState === 1) return;
            self.setState('polling', 'Polling');
            data.events.forEach(function (ev) { self.deliver(ev, key); });
            if (data.cursor > sub.cursor) sub.cursor = data.cursor;
          })
          .catch(function () { self.setState('offline', 'Offline'); });
      });
    };
    this.pollTimer = setInterval(tick, POLL_MS);
    tick();
  };

  Live.prototype.stopPolling = function () {
    clearInterval(this.pollTimer);
    this.pollTimer = null;
  };

  // -- fragments: server-rendered parts of the page, swapped in when things change ----------

  function Fragment(el, minGap) {
    this.el = el;
    this.minGap = minGap;
    this.last = 0;
    this.timer = null;
    this.busy = false;
    this.again = false;
  }

  Fragment.prototype.schedule = function () {
    var self = this;
    if (this.timer) return;
    var wait = Math.max(120, this.minGap - (Date.now() - this.last));
    this.timer = setTimeout(function () { self.timer = null; self.load(); }, wait);
  };

  Fragment.prototype.load = function () {
    var self = this;
    if (this.busy) { this.again = true; return; }
    this.busy = true;
    this.last = Date.now();
    fetch(this.el.dataset.fragment, { credentials: 'same-origin', headers: { Accept: 'text/html' } })
      .then(function (r) {
        if (r.status === 404 && PAGE === 'job') { toast('warn', 'This job was deleted', '', BASE + '/'); return null; }
        if (!r.ok) throw new Error(r.status);
        return r.text();
      })
      .then(function (html) {
        if (html == null) return;
        var open = {};
        self.el.querySelectorAll('details[id]').forEach(function (d) { open[d.id] = d.open; });
        self.el.innerHTML = html;   // escaped by the server's templates
        Object.keys(open).forEach(function (id) { var d = document.getElementById(id); if (d) d.open = open[id]; });
        refreshTimes(self.el);
        syncWatchButtons();
        body.dispatchEvent(new CustomEvent('activejob:refreshed'));
      })
      .catch(function () { /* the next event or poll tries again */ })
      .then(function () {
        self.busy = false;
        if (self.again) { self.again = false; self.schedule(); }
      });
  };

  // -- progress in place -----------------------------------------------------------------

  function applyProgress(root, ev) {
    if (!root) return;
    var d = ev.data || {};
    var pct = null;
    if (typeof d.progress === 'number') pct = d.progress * 100;
    else if (typeof d.total === 'number' && d.total > 0) pct = 100 * (d.current || 0) / d.total;
    var bar = root.querySelector('[data-bar]');
    if (bar && pct != null) {
      bar.hidden = false;
      bar.value = Math.max(0, Math.min(100, pct));
    }
    var empty = root.querySelector('[data-message-empty]');
    if (empty) empty.remove();
    var pctEl = root.querySelector('[data-pct]');
    if (pctEl && pct != null) { pctEl.textContent = Math.round(pct) + '%'; pctEl.classList.remove('muted'); }
    var count = root.querySelector('[data-count]');
    if (count) count.textContent = typeof d.total === 'number' ? (d.current || 0).toLocaleString() + ' of ' + d.total.toLocaleString() : '';
    var msg = root.querySelector('[data-message]');
    if (msg) msg.textContent = d.message || '';
    var sep = root.querySelector('[data-sep]');
    if (sep) sep.hidden = !(d.message && typeof d.total === 'number');
    if (d.phase) {
      var name = root.querySelector('[data-phase-name]');
      if (name) name.textContent = d.phase;
      var list = root.querySelector('[data-phases]');
      if (list) {
        var items = Array.prototype.slice.call(list.querySelectorAll('li[data-phase]'));
        var at = items.findIndex(function (li) { return li.dataset.phase === d.phase; });
        if (at >= 0) items.forEach(function (li, i) { li.className = i < at ? 'done' : i === at ? 'current' : ''; });
      }
    }
  }

  // A job back in the queue (retrying, requeued) starts its next attempt from nothing: the
  // previous attempt's progress goes at once, before the server's fragment arrives.
  function resetProgress(root) {
    if (!root) return;
    var bar = root.querySelector('[data-bar]');
    if (bar) { bar.value = 0; if (!root.matches('#progress-card')) bar.hidden = true; }
    var pctEl = root.querySelector('[data-pct]');
    if (pctEl) { pctEl.textContent = root.matches('#progress-card') ? '' : '\u2014'; pctEl.classList.add('muted'); }
    ['[data-count]', '[data-message]', '[data-phase-name]'].forEach(function (sel) {
      var el = root.querySelector(sel);
      if (el) el.textContent = '';
    });
    var sep = root.querySelector('[data-sep]');
    if (sep) sep.hidden = true;
    root.querySelectorAll('[data-phases] li[data-phase]').forEach(function (li) { li.className = ''; });
  }

  // -- actions: Cancel / Retry / Delete, Pause / Resume and Watch ------------------------------

  // Changes go to the REST API as JSON (a form's data-api); the form's own action is the
  // pages' plain-form route, for a browser without this script.
  function postAction(url, body) {
    return fetch(url, {
      method: 'POST', credentials: 'same-origin',
      headers: { 'Content-Type': 'application/json', Accept: 'application/json', 'X-CSRF-Token': CSRF },
      body: JSON.stringify(body)
    }).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (data) { return { ok: r.ok, status: r.status, data: data }; });
    });
  }

  function queueAction(form) {
    var action = form.dataset.action, name = form.dataset.queue;
    var button = form.querySelector('button');
    if (button) button.disabled = true;
    postAction(form.dataset.api, {}).then(function (res) {
      if (!res.ok) {
        toast('warn', 'Could not ' + action + ' ' + name, res.data.error || ('HTTP ' + res.status));
      } else if (res.data.paused) {
        toast('info', res.data.changed ? 'Queue ' + name + ' paused' : 'Queue ' + name + ' was already paused',
              'Workers start none of its jobs until you resume it; running ones finish.');
      } else {
        toast('info', res.data.changed ? 'Queue ' + name + ' resumed' : 'Queue ' + name + ' was not paused',
              'Workers take its jobs again.');
      }
      if (button) button.disabled = false;
      if (window.activejobFragment) window.activejobFragment.load();
    }).catch(function () {
      if (button) button.disabled = false;
      toast('warn', 'Could not reach the server', 'Try again in a moment.');
    });
  }

  document.addEventListener('submit', function (e) {
    var form = e.target.closest('form[data-action]');
    if (!form) return;
    e.preventDefault();
    if (form.dataset.queue != null) { queueAction(form); return; }
    var action = form.dataset.action;
    if (action === 'delete' && !window.confirm('Delete this job and its history?')) return;
    var jobId = parseInt((form.action.match(/\/jobs\/(\d+)\//) || [])[1], 10);
    var button = form.querySelector('button');
    if (button) button.disabled = true;
    var expected = form.querySelector('input[name="expected_status"]');
    postAction(form.dataset.api, { expected_status: expected ? expected.value : undefined }).then(function (res) {
      if (!res.ok) {
        toast('warn', res.status === 409 ? 'Nothing changed' : 'Could not ' + action, res.data.error || ('HTTP ' + res.status));
      } else if (action === 'delete') {
        Watch.remove(jobId);
        location.href = BASE + '/';
        return;
      } else {
        Watch.add(jobId);
        toast('info', action === 'cancel' ? 'Cancel requested for #' + jobId : 'Job #' + jobId + ' will run again', '');
      }
      if (button) button.disabled = false;
      if (window.activejobFragment) window.activejobFragment.load();
    }).catch(function () {
      if (button) button.disabled = false;
      toast('warn', 'Could not reach the server', 'Try again in a moment.');
    });
  });

  document.addEventListener('click', function (e) {
    var btn = e.target.closest('[data-watch]');
    if (!btn) return;
    var id = parseInt(btn.dataset.watch, 10);
    if (Watch.has(id)) Watch.remove(id); else Watch.add(id);
    syncWatchButtons();
  });

  // -- charts: the last hour from /api/activity, drawn as small SVGs (no library) ----------

  var SVGNS = 'http://www.w3.org/2000/svg';
  var CW = 600, CH = 170, PL = 46, PR = 10, PT = 10, PB = 22;
  var FINISHED_KINDS = ['completed', 'failed', 'cancelled'];

  function svg(name, attrs, parent) {
    var el = document.createElementNS(SVGNS, name);
    Object.keys(attrs || {}).forEach(function (k) { el.setAttribute(k, attrs[k]); });
    if (parent) parent.appendChild(el);
    return el;
  }

  function niceMax(v) {
    if (!(v > 0)) return 1;
    var p = Math.pow(10, Math.floor(Math.log10(v))), n = v / p;
    return (n <= 1 ? 1 : n <= 2 ? 2 : n <= 5 ? 5 : 10) * p;
  }

  function hhmm(iso) { var d = new Date(iso); return pad(d.getHours()) + ':' + pad(d.getMinutes()); }

  function fmtCount(v) { return v % 1 ? v.toFixed(1) : String(v); }

  function fmtAge(s) { return s <= 0 ? '0' : fmtDuration(s); }

  // The axes of one chart: returns where minute i and value v are drawn.
  function frame(box, label, minutes, top, fmtY) {
    box.textContent = '';
    var root = svg('svg', { viewBox: '0 0 ' + CW + ' ' + CH, class: 'chart-svg', role: 'img', 'aria-label': label }, box);
    var n = minutes.length, w = (CW - PL - PR) / n;
    var y = function (v) { return PT + (CH - PT - PB) * (1 - v / top); };
    [0, top / 2, top].forEach(function (v) {
      svg('line', { x1: PL, x2: CW - PR, y1: y(v), y2: y(v), class: 'grid' }, root);
      svg('text', { x: PL - 6, y: y(v) + 4, class: 'axis', 'text-anchor': 'end' }, root).textContent = fmtY(v);
    });
    [[0, 'start'], [Math.floor(n / 2), 'middle'], [n - 1, 'end']].forEach(function (tick) {
      var t = svg('text', { x: PL + w * (tick[0] + (tick[1] === 'end' ? 1 : tick[1] === 'middle' ? 0.5 : 0)),
                            y: CH - 6, class: 'axis', 'text-anchor': tick[1] }, root);
      t.textContent = tick[0] === n - 1 ? 'now' : hhmm(minutes[tick[0]]);
    });
    return { root: root, w: w, x: function (i) { return PL + w * i; }, y: y };
  }

  function legend(key, items) {
    var el = document.querySelector('[data-legend="' + key + '"]');
    if (!el) return;
    el.textContent = '';
    items.forEach(function (item) {
      var s = document.createElement('span'); s.className = 'legend-item';
      var sw = document.createElement('span'); sw.className = 'swatch ' + item[1]; s.appendChild(sw);
      s.appendChild(document.createTextNode(item[0]));
      el.appendChild(s);
    });
  }

  function drawFinished(box, data) {
    var n = data.minutes.length, totals = [];
    for (var i = 0; i < n; i++) totals.push(FINISHED_KINDS.reduce(function (a, k) { return a + (data.finished[k] || [])[i]; }, 0));
    var f = frame(box, 'Jobs finished per minute, by status', data.minutes, niceMax(Math.max.apply(null, totals)),
                  fmtCount);
    for (i = 0; i < n; i++) {
      if (!totals[i]) continue;
      var base = 0, g = svg('g', { 'data-minute': data.minutes[i], 'data-total': totals[i] }, f.root);
      var parts = [];
      FINISHED_KINDS.forEach(function (k) {
        var v = (data.finished[k] || [])[i] || 0;
        if (!v) return;
        parts.push(v + ' ' + k);
        svg('rect', { x: f.x(i) + f.w * 0.12, width: f.w * 0.76, y: f.y(base + v), height: f.y(base) - f.y(base + v),
                      class: 'fill-' + k }, g);
        base += v;
      });
      svg('title', {}, g).textContent = hhmm(data.minutes[i]) + ': ' + parts.join(', ');
    }
    legend('finished', FINISHED_KINDS.map(function (k) { return [k, 'fill-' + k]; }));
  }

  function drawLines(box, data, key, label, fmtY) {
    var names = Object.keys(data.queues);
    if (!names.length) { box.textContent = ''; var p = document.createElement('p'); p.className = 'muted small'; p.textContent = 'No queue had jobs in the last hour.'; box.appendChild(p); legend(key, []); return; }
    var top = 0;
    names.forEach(function (q) { top = Math.max(top, Math.max.apply(null, data.queues[q][key])); });
    var f = frame(box, label, data.minutes, niceMax(top), fmtY);
    names.forEach(function (q, qi) {
      var values = data.queues[q][key];
      var points = values.map(function (v, i) { return (f.x(i) + f.w / 2).toFixed(1) + ',' + f.y(v).toFixed(1); }).join(' ');
      var line = svg('polyline', { points: points, class: 'line series-' + (qi % 8), 'data-queue': q }, f.root);
      svg('title', {}, line).textContent = q + ': ' + fmtY(values[values.length - 1]) + ' now';
    });
    legend(key, names.map(function (q, qi) { return [q, 'stroke-series-' + (qi % 8)]; }));
  }

  function startCharts(el) {
    var load = function () {
      if (document.hidden) return;
      fetch(el.dataset.activity, { credentials: 'same-origin', headers: { Accept: 'application/json' } })
        .then(function (r) { if (!r.ok) throw new Error(r.status); return r.json(); })
        .then(function (data) {
          drawFinished(el.querySelector('[data-chart=finished]'), data);
          drawLines(el.querySelector('[data-chart=depth]'), data, 'depth', 'Pending jobs per queue',
                    fmtCount);
          drawLines(el.querySelector('[data-chart=oldest_age]'), data, 'oldest_age',
                    'Oldest pending job per queue, waiting since', fmtAge);
          el.dataset.loaded = data.now;
        })
        .catch(function () { el.dataset.loaded = 'error'; });
    };
    load();
    setInterval(load, 5000);
    var pending = null;
    return function soon() {  // a job changed state: draw again shortly (once for a burst)
      if (pending) return;
      pending = setTimeout(function () { pending = null; load(); }, 1200);
    };
  }

  // -- bulk actions: cancel / delete the selected jobs, retry all failed --------------------

  var selected = new Set();

  function syncSelection() {
    var boxes = Array.prototype.slice.call(document.querySelectorAll('input[data-select]'));
    var shown = new Set();
    boxes.forEach(function (b) { var id = parseInt(b.value, 10); shown.add(id); b.checked = selected.has(id); });
    selected.forEach(function (id) { if (!shown.has(id)) selected.delete(id); });  // gone from the page
    var all = document.querySelector('[data-select-all]');
    if (all) {
      all.checked = boxes.length > 0 && selected.size === boxes.length;
      all.indeterminate = selected.size > 0 && selected.size < boxes.length;
    }
    var count = document.querySelector('[data-selected-count]');
    if (count) count.textContent = selected.size ? selected.size + ' selected' : 'None selected';
    document.querySelectorAll('[data-bulk=cancel], [data-bulk=delete]').forEach(function (b) { b.disabled = !selected.size; });
  }

  document.addEventListener('change', function (e) {
    var box = e.target.closest('input[data-select], input[data-select-all]');
    if (!box) return;
    if (box.matches('[data-select-all]')) {
      document.querySelectorAll('input[data-select]').forEach(function (b) {
        var id = parseInt(b.value, 10);
        if (box.checked) selected.add(id); else selected.delete(id);
      });
    } else if (box.checked) selected.add(parseInt(box.value, 10));
    else selected.delete(parseInt(box.value, 10));
    syncSelection();
  });
  body.addEventListener('activejob:refreshed', syncSelection);

  function postJSON(url, data) {
    return postAction(url, data);
  }

  function plural(n, word) { return n + ' ' + word + (n === 1 ? '' : 's'); }

  document.addEventListener('click', function (e) {
    var btn = e.target.closest('button[data-bulk]');
    if (!btn || btn.disabled) return;
    var action = btn.dataset.bulk, ids = Array.from(selected), question, url, payload;
    if (action === 'retry-failed') {
      var n = parseInt(btn.dataset.count || '0', 10);
      question = 'Run all ' + plural(n, 'failed job') + (btn.dataset.q || btn.dataset.name || btn.dataset.queue || btn.dataset.owner ? ' matching these filters' : '') + ' again?';
      url = BASE + '/api/jobs/retry-failed';
      payload = { name: btn.dataset.name || undefined, queue: btn.dataset.queue || undefined,
                  owner: btn.dataset.owner || undefined, q: btn.dataset.q || undefined };
    } else {
      if (!ids.length) return;
      question = action === 'cancel' ? 'Cancel ' + plural(ids.length, 'selected job') + '? Finished ones are left as they are.'
        : 'Delete ' + plural(ids.length, 'selected job') + ' and their history? Only finished jobs are deleted.';
      url = BASE + '/api/jobs/' + action;
      payload = { ids: ids };
    }
    if (!window.confirm(question)) return;
    btn.disabled = true;
    postJSON(url, payload).then(function (res) {
      if (!res.ok) {
        toast('warn', 'Could not ' + action.replace('-', ' '), res.data.error || ('HTTP ' + res.status));
        btn.disabled = false;
        return;
      }
      var d = res.data, skipped = d.skipped ? plural(d.skipped, 'job') + ' left alone (not in a state for it).' : '';
      if (action === 'retry-failed') toast('info', plural(d.retried, 'failed job') + ' will run again', '');
      else if (action === 'cancel') toast('info', 'Cancelled ' + plural(d.cancelled, 'job'), skipped);
      else toast('info', 'Deleted ' + plural(d.deleted, 'job'), skipped);
      if (action !== 'retry-failed') { selected.clear(); syncSelection(); } else btn.hidden = true;
      if (window.activejobFragment) window.activejobFragment.load();
    }).catch(function () {
      btn.disabled = false;
      toast('warn', 'Could not reach the server', 'Try again in a moment.');
    });
  });

  // -- pages -------------------------------------------------------------------------

  function start() {
    refreshTimes();
    syncWatchButtons();
    setInterval(function () { refreshTimes(); }, 1000);
    var liveEl = document.getElementById('live');
    var fragment = liveEl && liveEl.dataset.fragment ? new Fragment(liveEl, PAGE === 'job' ? 400 : 1000) : null;
    window.activejobFragment = fragment;
    var charts = document.getElementById('charts');
    var redrawCharts = charts && charts.dataset.activity ? startCharts(charts) : null;
    syncSelection();
    var live = new Live();
    var jobId = body.dataset.jobId ? parseInt(body.dataset.jobId, 10) : null;

    live.on(maybeToast);
    // The id of each job's last return to pending: a progress event older than it (one that
    // reached us late, after the retry did) is the previous attempt's, and is not shown.
    var backAt = {};
    function stale(ev) {
      if (BACK_TO_PENDING[ev.event]) backAt[ev.job_id] = Math.max(backAt[ev.job_id] || 0, ev.id || 0);
      return ev.event === 'progress' && ev.id != null && ev.id < (backAt[ev.job_id] || 0);
    }
    if (PAGE === 'job' && jobId != null) {
      live.subscribe({ job_id: jobId });
      Watch.all().slice(-20).forEach(function (id) { if (id !== jobId) live.subscribe({ job_id: id }); });
      live.on(function (ev) {
        if (ev.job_id !== jobId || stale(ev)) return;
        if (ev.event === 'progress') {
          var shown = document.querySelector('#progress-card [data-phase-name]');
          var phase = ev.data && ev.data.phase;
          if (phase && fragment && shown && shown.textContent !== phase) fragment.schedule();  // a new timeline entry
          applyProgress(document.getElementById('progress-card'), ev);
        } else {
          if (BACK_TO_PENDING[ev.event]) resetProgress(document.getElementById('progress-card'));
          if (fragment) fragment.schedule();
        }
      });
    } else if (fragment) {  // every list page (jobs, queues, batches, a batch): refresh on status changes
      var batchId = body.dataset.batchId ? parseInt(body.dataset.batchId, 10) : null;
      live.subscribe(batchId != null ? { batch_id: batchId } : {});  // a batch's page: only its events
      live.on(function (ev) {
        if (stale(ev)) return;
        if (ev.event === 'progress') {
          document.querySelectorAll('[data-progress-for="' + ev.job_id + '"]').forEach(function (cell) { applyProgress(cell, ev); });
          return;
        }
        if (BACK_TO_PENDING[ev.event]) {
          document.querySelectorAll('[data-progress-for="' + ev.job_id + '"]').forEach(resetProgress);
        }
        if (STATUS_EVENTS[ev.event] && fragment) fragment.schedule();
        if (STATUS_EVENTS[ev.event] && redrawCharts) redrawCharts();
      });
      var every = liveEl && parseFloat(liveEl.dataset.refresh || '0');
      if (every && fragment) setInterval(function () { fragment.schedule(); }, every * 1000);
    } else {
      Watch.all().slice(-20).forEach(function (id) { live.subscribe({ job_id: id }); });
    }
    live.connect();
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})();
