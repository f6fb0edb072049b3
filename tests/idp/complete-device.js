// Completes a device flow the way a person in a browser would, by posting the provider's
// real forms: the /device user-code form, its confirmation form (or its abort button), then
// the /interaction login and consent forms, keeping cookies throughout.
//
//   node complete-device.js ISSUER USER_CODE LOGIN [approve|abort]
//
// Exits 0 when the provider shows its success (or, for abort, its "aborted") page.

const [issuer, userCode, login, action = 'approve'] = process.argv.slice(2);
const jar = new Map();

function remember(res) {
  for (const c of res.headers.getSetCookie()) {
    const [pair] = c.split(';');
    const i = pair.indexOf('=');
    jar.set(pair.slice(0, i), pair.slice(i + 1));
  }
}

async function go(url, form) {
  const headers = { cookie: [...jar].map(([k, v]) => `${k}=${v}`).join('; ') };
  let body;
  if (form) {
    headers['content-type'] = 'application/x-www-form-urlencoded';
    body = new URLSearchParams(form).toString();
  }
  const res = await fetch(new URL(url, issuer), { method: form ? 'POST' : 'GET', headers, body, redirect: 'manual', signal: AbortSignal.timeout(20000) });
  remember(res);
  if (res.status >= 300 && res.status < 400) return go(new URL(res.headers.get('location'), issuer).href);
  return { status: res.status, text: await res.text(), url };
}

const field = (html, name) => {
  const m = html.match(new RegExp(`name="${name}" value="([^"]*)"`));
  if (!m) throw new Error(`no ${name} field in:\n${html}`);
  return m[1];
};
const formAction = (html) => html.match(/<form[^>]*action="([^"]+)"/)[1];

async function main() {
  let page = await go('/device');
  const xsrf = field(page.text, 'xsrf');
  page = await go('/device', { xsrf, user_code: userCode });
  const xsrf2 = field(page.text, 'xsrf');
  if (action === 'abort') {
    page = await go('/device', { xsrf: xsrf2, user_code: userCode, abort: 'yes' });
    if (!/interrupted|aborted|denied/i.test(page.text)) throw new Error(`abort not confirmed:\n${page.text}`);
    return;
  }
  page = await go('/device', { xsrf: xsrf2, user_code: userCode, confirm: 'yes' });
  for (let i = 0; i < 4 && /name="prompt"/.test(page.text); i += 1) {
    const prompt = field(page.text, 'prompt');
    const action = formAction(page.text);
    const form = prompt === 'login' ? { prompt, login, password: 'x' } : { prompt };
    page = await go(action, form);
  }
  if (!/Sign-in Success/i.test(page.text)) throw new Error(`device flow not completed:\n${page.text}`);
}

main().catch((e) => { process.stderr.write(`${e.stack || e}\n`); process.exit(1); });
