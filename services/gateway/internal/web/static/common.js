// What every Doorstep page shares: the language (the browser's, as the server read it from
// Accept-Language, unless the person switched), building DOM from text only, calling the API,
// money and weights, the signed-in person and the top bar. Plain JavaScript, no build step, no
// third-party code.
'use strict';

window.Doorstep = (() => {
  const stored = localStorage.getItem('doorstep.lang');
  const lang = stored === 'en' || stored === 'zh' ? stored : (document.documentElement.lang || 'zh').startsWith('en') ? 'en' : 'zh';
  document.documentElement.lang = lang === 'en' ? 'en' : 'zh-CN';

  // L picks the text of the page's language; every string is written in both.
  const L = (zh, en) => (lang === 'en' ? en : zh);

  const $ = (id) => document.getElementById(id);

  // el builds DOM from text only (never innerHTML), so names from the catalog or the roster
  // cannot inject markup.
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === 'class') node.className = v;
      else if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
      else if (k === 'value') node.value = v;
      else if (k === 'checked') node.checked = Boolean(v);
      else if (v !== false && v != null) node.setAttribute(k, v === true ? '' : v);
    }
    for (const c of children.flat(Infinity)) {
      if (c == null || c === false) continue;
      node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return node;
  }

  // Static text in the HTML carries both languages as data-zh / data-en.
  function translateStatic() {
    for (const node of document.querySelectorAll('[data-zh]')) {
      node.textContent = L(node.dataset.zh, node.dataset.en);
    }
    for (const node of document.querySelectorAll('[data-placeholder-zh]')) {
      node.placeholder = L(node.dataset.placeholderZh, node.dataset.placeholderEn);
    }
  }

  // Money is integer fen all the way; only the display divides.
  function yuan(fen) {
    const sign = fen < 0 ? '-' : '';
    const abs = Math.abs(fen);
    return `${sign}¥${Math.floor(abs / 100)}.${String(abs % 100).padStart(2, '0')}`;
  }
  const grams = (g) => (g >= 1000 ? `${g / 1000} kg` : `${g} g`);

  // unitName shows a counting unit as suppliers enter it (an English word: the catalog's units)
  // in the reader's language; a unit not listed here is shown as entered.
  const UNITS_ZH = {
    bag: '袋', bottle: '瓶', box: '盒', carton: '盒', tray: '盘', pack: '包', loaf: '个', piece: '个',
    sheet: '张', can: '罐', jar: '罐', tube: '支', strip: '板', bunch: '把', kg: '公斤',
  };
  const unitName = (u) => (lang === 'en' ? u : UNITS_ZH[String(u).toLowerCase()] || u);
  // quantityText is how much of an item a line holds: grams for weighed goods, else a count and
  // its unit.
  const quantityText = (weighed, q, unit) => (weighed ? grams(q) : `${q} ${unitName(unit)}`);

  // splitList reads "1, 3 5" or "1，3、5" (a Chinese keyboard's commas) as a list of names.
  const splitList = (s) => s.split(/[\s,，、]+/).filter(Boolean);

  const timeFormat = new Intl.DateTimeFormat(lang === 'en' ? 'en-GB' : 'zh-CN', {
    timeZone: 'Asia/Shanghai', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', hour12: false,
  });
  const when = (iso) => (iso ? timeFormat.format(new Date(iso)) : '');

  function newRequestId() {
    if (crypto.randomUUID) return crypto.randomUUID();
    // randomUUID exists only in secure contexts; a phone on the compound's Wi-Fi may open the
    // page over plain http, so build a version 4 UUID by hand there.
    const b = crypto.getRandomValues(new Uint8Array(16));
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    const h = Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
  }

  // api never throws for HTTP errors; a network failure gives null, and callers keep their
  // request id for the retry. A 401 means the session ended: back to sign-in.
  async function api(method, path, body) {
    const opts = { method, headers: { Accept: 'application/json' }, credentials: 'same-origin' };
    if (body !== undefined) {
      opts.headers['Content-Type'] = 'application/json';
      opts.body = JSON.stringify(body);
    }
    let res;
    try {
      res = await fetch(path, opts);
    } catch (_) {
      return null;
    }
    let data = null;
    try {
      data = await res.json();
    } catch (_) {
      data = null;
    }
    if (res.status === 401 && !path.startsWith('/api/v1/session')) {
      toSignIn();
    }
    return { ok: res.ok, status: res.status, data };
  }

  // An outcome is unknown after a network error or a 5xx: the request may have been applied,
  // so only then is a request id kept for the retry.
  const outcomeUnknown = (res) => !res || res.status >= 500;

  function errorText(res) {
    if (!res) return [L('网络错误，请重试', 'Network error, please try again'), []];
    const err = (res.data && res.data.error) || {};
    const byStatus = {
      400: L('请检查输入', 'Please check your input'),
      403: L('没有权限', 'Not allowed'),
      404: L('未找到', 'Not found'),
      409: L('无法完成', 'Could not be done'),
      429: L('操作太频繁，请稍候', 'Too many attempts, please wait'),
      501: L('此功能尚未开放', 'Not available yet'),
      503: L('服务暂不可用，请稍后重试', 'Service unavailable, please retry'),
      504: L('服务超时，请重试', 'Timed out, please retry'),
    };
    const head = byStatus[res.status] || L('出错了', 'Something went wrong');
    const fields = Object.entries(err.fields || {}).map(([f, why]) => `${f}: ${why}`);
    return [fields.length ? head : `${head}${err.message ? ' — ' + err.message : ''}`, fields];
  }

  function showMessage(target, kind, text, fields) {
    target.className = `message ${kind}`;
    const nodes = [el('div', null, text)];
    if (fields && fields.length) nodes.push(el('ul', null, fields.map((f) => el('li', null, f))));
    target.replaceChildren(...nodes);
  }
  const showError = (target, res) => {
    const [text, fields] = errorText(res);
    showMessage(target, 'error', text, fields);
  };

  const STATES = {
    PLACED: ['已下单', 'Placed', 'waiting'],
    CONFIRMED: ['商家已确认', 'Confirmed', 'moving'],
    REJECTED: ['商家已拒绝', 'Rejected', 'bad'],
    CANCELLED: ['已取消', 'Cancelled', 'bad'],
    EXPIRED: ['已过期', 'Expired', 'bad'],
    READY: ['已备货', 'Ready', 'moving'],
    AT_GATE: ['已到小区门口', 'At the gate', 'moving'],
    ASSIGNED: ['已分配配送员', 'Assigned', 'moving'],
    OUT_FOR_DELIVERY: ['配送中', 'Out for delivery', 'moving'],
    DELIVERED: ['已送达', 'Delivered', 'good'],
    FAILED: ['未送达', 'Not delivered', 'bad'],
    PENDING: ['待取货', 'Pending', 'waiting'],
  };
  function chip(state, attrs) {
    const [zh, en, tone] = STATES[state] || [state || '—', state || '—', ''];
    return el('span', { class: `chip ${tone}`, ...(attrs || {}) }, L(zh, en));
  }

  function toSignIn() {
    const next = location.pathname === '/signin' ? '/' : location.pathname;
    location.replace(`/signin?next=${encodeURIComponent(next)}`);
  }

  // session returns the signed-in person, or sends the browser to sign-in. A person on the
  // wrong page (a courier opening /supplier) is sent to their own.
  async function session(role) {
    const res = await api('GET', '/api/v1/session');
    if (!res || !res.ok) {
      if (!res || res.status === 401) toSignIn();
      return null;
    }
    if (role && res.data.role !== role) {
      location.replace(res.data.page);
      return null;
    }
    return res.data;
  }

  async function signOut() {
    await api('DELETE', '/api/v1/session');
    location.replace('/signin');
  }

  // topBar fills the page header: who is signed in, the language switch and sign-out.
  function topBar(me, who) {
    const bar = $('bar');
    if (!bar) return;
    bar.replaceChildren(
      el('span', { class: 'who', id: 'who' }, who || ''),
      el('button', {
        type: 'button', class: 'lang', id: 'lang-switch', lang: lang === 'en' ? 'zh-CN' : 'en',
        onclick: () => { localStorage.setItem('doorstep.lang', lang === 'en' ? 'zh' : 'en'); location.reload(); },
      }, lang === 'en' ? '中文' : 'English'),
      ...(me ? [el('button', { type: 'button', class: 'signout', id: 'sign-out', onclick: signOut }, L('退出', 'Sign out'))] : []),
    );
  }

  translateStatic();
  return { L, lang, $, el, yuan, grams, unitName, quantityText, splitList, when, newRequestId, api, outcomeUnknown, errorText, showMessage, showError, STATES, chip, session, topBar, toSignIn };
})();
