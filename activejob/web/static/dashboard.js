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
  var STATUS_EVENTS = { enqueued: 1, started: 1, waiting: 1, retrying: 1, completed: 1, failed: 1, cancelled: 1, requeued: 1, deleted: 1 };
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

  function postAction(form, body) {
    return fetch(form.action, {
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
    postAction(form, {}).then(function (res) {
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
    postAction(form, { expected_status: expected ? expected.value : undefined }).then(function (res) {
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

  // -- pages -------------------------------------------------------------------------

  function start() {
    refreshTimes();
    syncWatchButtons();
    setInterval(function () { refreshTimes(); }, 1000);
    var liveEl = document.getElementById('live');
    var fragment = liveEl && liveEl.dataset.fragment ? new Fragment(liveEl, PAGE === 'job' ? 400 : 1000) : null;
    window.activejobFragment = fragment;
    var live = new Live();
    var jobId = body.dataset.jobId ? parseInt(body.dataset.jobId, 10) : null;

    live.on(maybeToast);
    if (PAGE === 'job' && jobId != null) {
      live.subscribe({ job_id: jobId });
      Watch.all().slice(-20).forEach(function (id) { if (id !== jobId) live.subscribe({ job_id: id }); });
      live.on(function (ev) {
        if (ev.job_id !== jobId) return;
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
    } else if (PAGE === 'jobs' || PAGE === 'queues') {
      live.subscribe({});
      live.on(function (ev) {
        if (ev.event === 'progress') {
          document.querySelectorAll('[data-progress-for="' + ev.job_id + '"]').forEach(function (cell) { applyProgress(cell, ev); });
          return;
        }
        if (BACK_TO_PENDING[ev.event]) {
          document.querySelectorAll('[data-progress-for="' + ev.job_id + '"]').forEach(resetProgress);
        }
        if (STATUS_EVENTS[ev.event] && fragment) fragment.schedule();
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
