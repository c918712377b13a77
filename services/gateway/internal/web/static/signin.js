// Sign-in: a household's code (typed, or from the link of the QR code on its notice) or a staff
// account. Opening a sign-in link signs in by a POST from this page, never by the GET itself,
// so another site cannot sign a phone in to a household of its choosing.
'use strict';

(() => {
  const { L, $, api, showMessage, showError, topBar } = window.Doorstep;
  topBar(null, '');
  const params = new URLSearchParams(location.search);

  function landing(me) {
    const next = params.get('next');
    // Only a path of this site, and only the signed-in role's own page or below.
    if (next && next.startsWith('/') && !next.startsWith('//') && (next === me.page || next.startsWith(me.page + '/'))) return next;
    return me.page;
  }

  async function signIn(path, body, msg, button) {
    button.disabled = true;
    showMessage(msg, '', L('正在登录…', 'Signing in…'));
    const res = await api('POST', path, body);
    button.disabled = false;
    if (res && res.ok) {
      showMessage(msg, 'ok', L('登录成功', 'Signed in'));
      location.replace(landing(res.data));
      return;
    }
    if (res && res.status === 401) {
      showMessage(msg, 'error', L('登录码、账号或密码不正确', 'The code, account or password was not accepted'));
      return;
    }
    showError(msg, res);
  }

  $('code-form').addEventListener('submit', (e) => {
    e.preventDefault();
    signIn('/api/v1/session/code', { code: $('code').value.trim() }, $('code-message'), $('code-submit'));
  });
  $('staff-form').addEventListener('submit', (e) => {
    e.preventDefault();
    signIn('/api/v1/session/password', { account_id: $('account').value.trim(), password: $('password').value },
      $('staff-message'), $('staff-submit'));
  });

  const code = params.get('code');
  if (code) {
    $('code').value = code;
    // The code is in the address bar; take it out before anything else can read it.
    history.replaceState(null, '', '/signin');
    $('code-form').requestSubmit();
  } else {
    // Already signed in: straight to the person's page.
    api('GET', '/api/v1/session').then((res) => {
      if (res && res.ok) location.replace(landing(res.data));
    });
  }
})();
