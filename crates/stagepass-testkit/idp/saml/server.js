// A real SAML 2.0 identity provider for the stagepass tests: samlify on loopback.
//
//   node server.js [--port 0] [--entity-id ID] [--exit-with-stdin]
//
// Prints one JSON line once it listens: {"port", "entityId", "ssoUrl", "cert", "otherCert",
// "spKey", "spCert"} (the last two: the service provider's test key pair, PEM).
//
// GET /idp/sso?SAMLRequest=…&RelayState=…&user=<email>[&nameId=…][&variant=…] reads the service provider's
// AuthnRequest (HTTP-Redirect binding) and answers an auto-post HTML form (HTTP-POST binding)
// to the request's AssertionConsumerServiceURL with `SAMLResponse` and `RelayState`.
// `variant` (comma-separated) makes hostile or unusual responses for the tests:
//   response-signed | both-signed   (default: only the assertion is signed)
//   unsigned                       no signature at all
//   other-key                      signed by another key, whose certificate is in KeyInfo
//   wrong-audience | wrong-destination | wrong-issuer | wrong-in-response-to
//   expired                        issued 10 minutes ago, conditions over 5 minutes ago
//   not-yet-valid                  conditions start in 10 minutes
//   wrong-recipient                SubjectConfirmationData Recipient is another URL
//   no-in-response-to              no InResponseTo anywhere (as an IdP-initiated response)
//   responder                      StatusCode urn:…:status:Responder
//   sha1                           RSA-SHA1 signature
//   doctype                        a DOCTYPE with an entity before the root element
//   signed-request                 the AuthnRequest must carry a valid Redirect-binding
//                                  signature by keys/sp-cert.pem (samlify with
//                                  wantAuthnRequestsSigned); answers 403 otherwise
//   encrypted                      the assertion encrypted to the service provider's test
//                                  certificate (keys/sp-cert.pem), then the Response signed
// GET /idp/login?SAMLRequest=…&RelayState=… is the same sign-in for a person in a browser: a
// login form asking for an e-mail address, which POSTs to /idp/login and gets the auto-post
// form of /idp/sso for that user (NameID: the address's local part). Use it as the entry point
// when a browser drives the sign-in.
// GET /idp/metadata answers the IdP metadata.
// GET /idp/slo?SAMLRequest=…[&SigAlg=…&Signature=…] reads a LogoutRequest (HTTP-Redirect
// binding) with samlify, checking its signature by keys/sp-cert.pem when it is signed, and
// answers JSON {signed, nameId, sessionIndex, issuer} (403 when samlify refuses it).
//
// The keys in keys/ are test keys made for this server and nothing else.

import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { inflateRawSync } from 'node:zlib';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import samlifyModule from 'samlify';

const samlify = samlifyModule.default ?? samlifyModule;

const here = dirname(fileURLToPath(import.meta.url));
const read = (name) => readFileSync(join(here, 'keys', name), 'utf8');

const args = process.argv.slice(2);
const arg = (name, fallback) => {
  const i = args.indexOf(name);
  return i >= 0 && i + 1 < args.length ? args[i + 1] : fallback;
};
const port = Number(arg('--port', '0'));
const entityIdArg = arg('--entity-id', '');

if (args.includes('--exit-with-stdin')) {
  process.stdin.on('end', () => process.exit(0));
  process.stdin.on('close', () => process.exit(0));
  process.stdin.resume();
}

// The service provider validates; this IdP only reads requests the tests make.
samlify.setSchemaValidator({ validate: () => Promise.resolve('skipped') });

const keys = {
  idp: { key: read('idp-key.pem'), cert: read('idp-cert.pem') },
  other: { key: read('other-key.pem'), cert: read('other-cert.pem') },
  sp: { key: read('sp-key.pem'), cert: read('sp-cert.pem') },
};
const pemBody = (pem) => pem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, '');

let baseUrl = '';
let entityId = '';

function makeIdp(which, signatureAlgorithm, encrypted = false) {
  return samlify.IdentityProvider({
    isAssertionEncrypted: encrypted,
    entityID: entityId,
    privateKey: keys[which].key,
    signingCert: keys[which].cert,
    requestSignatureAlgorithm: signatureAlgorithm,
    nameIDFormat: ['urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress'],
    singleLogoutService: [
      { Binding: 'urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect', Location: `${baseUrl}/idp/slo` },
    ],
    singleSignOnService: [
      { Binding: 'urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect', Location: `${baseUrl}/idp/sso` },
    ],
  });
}

function makeSp(spEntityId, acs, variants) {
  const bothSigned = variants.has('both-signed');
  const responseOnly = variants.has('response-signed');
  return samlify.ServiceProvider({
    entityID: spEntityId,
    encryptCert: keys.sp.cert,
    assertionConsumerService: [
      { Binding: 'urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST', Location: acs },
    ],
    wantAssertionsSigned: !responseOnly,
    wantMessageSigned: bothSigned || responseOnly,
  });
}

const escapeXml = (s) =>
  String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

function attributeStatement(email, name) {
  const attr = (attrName, value) =>
    `<saml:Attribute Name="${attrName}" NameFormat="urn:oasis:names:tc:SAML:2.0:attrname-format:basic">` +
    `<saml:AttributeValue xsi:type="xs:string">${escapeXml(value)}</saml:AttributeValue></saml:Attribute>`;
  return `<saml:AttributeStatement>${attr('email', email)}${attr('displayName', name)}</saml:AttributeStatement>`;
}

function values(request, spEntityId, acs, email, nameId, variants) {
  const now = new Date(Date.now() - (variants.has('expired') ? 10 * 60_000 : 0));
  const later = new Date(now.getTime() + 5 * 60_000);
  const name = email.split('@')[0];
  return {
    ID: '_' + crypto.randomUUID(),
    AssertionID: '_' + crypto.randomUUID(),
    Destination: variants.has('wrong-destination') ? 'https://evil.example.com/acs' : acs,
    Audience: variants.has('wrong-audience') ? 'https://evil.example.com/sp' : spEntityId,
    EntityID: spEntityId,
    SubjectRecipient: variants.has('wrong-recipient') ? 'https://evil.example.com/acs' : acs,
    Issuer: variants.has('wrong-issuer') ? 'https://evil.example.com/idp' : entityId,
    IssueInstant: now.toISOString(),
    AssertionConsumerServiceURL: acs,
    StatusCode: variants.has('responder')
      ? 'urn:oasis:names:tc:SAML:2.0:status:Responder'
      : 'urn:oasis:names:tc:SAML:2.0:status:Success',
    ConditionsNotBefore: variants.has('not-yet-valid')
      ? new Date(now.getTime() + 10 * 60_000).toISOString()
      : now.toISOString(),
    ConditionsNotOnOrAfter: later.toISOString(),
    SubjectConfirmationDataNotOnOrAfter: later.toISOString(),
    NameIDFormat: 'urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress',
    NameID: nameId,
    InResponseTo: variants.has('wrong-in-response-to') ? '_not-the-request' : request.id,
    AuthnStatement:
      `<saml:AuthnStatement AuthnInstant="${now.toISOString()}" SessionIndex="${'_' + crypto.randomUUID()}">` +
      '<saml:AuthnContext><saml:AuthnContextClassRef>urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport' +
      '</saml:AuthnContextClassRef></saml:AuthnContext></saml:AuthnStatement>',
    AttributeStatement: attributeStatement(email, name),
  };
}

function readRequest(query) {
  const xml = inflateRawSync(Buffer.from(query.get('SAMLRequest') ?? '', 'base64')).toString('utf8');
  const attr = (name) => (xml.match(new RegExp(`\\s${name}="([^"]*)"`)) ?? [])[1];
  const issuer = (xml.match(/<(?:\w+:)?Issuer[^>]*>([^<]*)</) ?? [])[1];
  return { xml, id: attr('ID'), acs: attr('AssertionConsumerServiceURL'), issuer };
}

// Checks the Redirect-binding signature of the AuthnRequest with samlify, over the query
// parameters exactly as they came (SAML Bindings 3.4.4.1).
async function verifyRequestSignature(query, rawQuery, request) {
  const octetString = rawQuery
    .split('&')
    .filter((p) => /^(SAMLRequest|RelayState|SigAlg)=/.test(p))
    .join('&');
  const idp = samlify.IdentityProvider({
    entityID: entityId,
    privateKey: keys.idp.key,
    signingCert: keys.idp.cert,
    wantAuthnRequestsSigned: true,
    singleSignOnService: [
      { Binding: 'urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect', Location: `${baseUrl}/idp/sso` },
    ],
  });
  const sp = samlify.ServiceProvider({
    entityID: request.issuer,
    authnRequestsSigned: true,
    signingCert: keys.sp.cert,
    assertionConsumerService: [
      { Binding: 'urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST', Location: request.acs },
    ],
  });
  await idp.parseLoginRequest(sp, 'redirect', { query: Object.fromEntries(query), octetString });
}

async function slo(query, rawQuery) {
  const signed = query.has('Signature');
  const xml = inflateRawSync(Buffer.from(query.get('SAMLRequest') ?? '', 'base64')).toString('utf8');
  const issuer = (xml.match(/<(?:\w+:)?Issuer[^>]*>([^<]*)</) ?? [])[1] ?? '';
  const redirect = 'urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect';
  const idp = samlify.IdentityProvider({
    entityID: entityId,
    privateKey: keys.idp.key,
    signingCert: keys.idp.cert,
    wantLogoutRequestSigned: signed,
    singleLogoutService: [{ Binding: redirect, Location: `${baseUrl}/idp/slo` }],
    singleSignOnService: [{ Binding: redirect, Location: `${baseUrl}/idp/sso` }],
  });
  const sp = samlify.ServiceProvider({
    entityID: issuer,
    signingCert: keys.sp.cert,
    singleLogoutService: [{ Binding: redirect, Location: 'https://sp.invalid/slo' }],
    assertionConsumerService: [
      { Binding: 'urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST', Location: 'https://sp.invalid/acs' },
    ],
  });
  const octetString = rawQuery
    .split('&')
    .filter((p) => /^(SAMLRequest|RelayState|SigAlg)=/.test(p))
    .join('&');
  try {
    const result = await idp.parseLogoutRequest(sp, 'redirect', { query: Object.fromEntries(query), octetString });
    const body = {
      signed,
      nameId: result.extract.nameID,
      sessionIndex: result.extract.sessionIndex,
      issuer: result.extract.issuer,
    };
    return { status: 200, type: 'application/json', body: JSON.stringify(body) };
  } catch (error) {
    return { status: 403, body: `the LogoutRequest was refused: ${error.message ?? error}` };
  }
}

async function sso(query, rawQuery) {
  const variants = new Set((query.get('variant') ?? '').split(',').filter(Boolean));
  const request = readRequest(query);
  if (!request.id || !request.acs || !request.issuer) {
    return { status: 400, body: 'the AuthnRequest has no ID, ACS URL or Issuer' };
  }
  if (variants.has('signed-request')) {
    try {
      await verifyRequestSignature(query, rawQuery, request);
    } catch (error) {
      return { status: 403, body: `the AuthnRequest signature was refused: ${error.message ?? error}` };
    }
  }
  const email = query.get('user') ?? 'jane@example.com';
  const relayState = query.get('RelayState') ?? '';
  const tvalue = values(request, request.issuer, request.acs, email, query.get('nameId') ?? email, variants);
  // replaceTagsByValue escapes values: the two statements are XML, so they go in first.
  let template = samlify.SamlLib.defaultLoginResponseTemplate.context
    .replace('{AuthnStatement}', tvalue.AuthnStatement)
    .replace('{AttributeStatement}', tvalue.AttributeStatement);
  if (variants.has('no-in-response-to')) {
    template = template.replaceAll(' InResponseTo="{InResponseTo}"', '');
  }
  let encoded;
  if (variants.has('unsigned')) {
    encoded = Buffer.from(samlify.SamlLib.replaceTagsByValue(template, tvalue)).toString('base64');
  } else {
    const algorithm = variants.has('sha1')
      ? 'http://www.w3.org/2000/09/xmldsig#rsa-sha1'
      : 'http://www.w3.org/2001/04/xmldsig-more#rsa-sha256';
    const idp = makeIdp(variants.has('other-key') ? 'other' : 'idp', algorithm, variants.has('encrypted'));
    const sp = makeSp(request.issuer, request.acs, variants);
    const made = await idp.createLoginResponse(
      sp,
      { extract: { request: { id: request.id } } },
      'post',
      { email },
      {
        customTagReplacement: () => ({ id: tvalue.ID, context: samlify.SamlLib.replaceTagsByValue(template, tvalue) }),
        encryptThenSign: variants.has('encrypted'),
      },
    );
    encoded = made.context;
  }
  if (variants.has('doctype')) {
    const xml = Buffer.from(encoded, 'base64').toString('utf8');
    const doctype = '<!DOCTYPE samlp:Response [<!ENTITY who "admin@example.com">]>';
    encoded = Buffer.from(doctype + xml.replace(/^<\?xml[^>]*\?>/, '')).toString('base64');
  }
  const html =
    '<!DOCTYPE html><html><body onload="document.forms[0].submit()">' +
    `<form method="post" action="${escapeXml(request.acs)}">` +
    `<input type="hidden" name="SAMLResponse" value="${escapeXml(encoded)}"/>` +
    `<input type="hidden" name="RelayState" value="${escapeXml(relayState)}"/>` +
    '</form></body></html>';
  return { status: 200, type: 'text/html', body: html };
}

function loginForm(query) {
  const hidden = (name) =>
    `<input type="hidden" name="${name}" value="${escapeXml(query.get(name) ?? '')}"/>`;
  const html =
    '<!DOCTYPE html><html><head><title>Test IdP sign-in</title></head><body>' +
    '<h1>Test IdP</h1><form method="post" action="/idp/login" id="login">' +
    '<label>E-mail <input type="email" name="email" autocomplete="off" required/></label>' +
    hidden('SAMLRequest') + hidden('RelayState') +
    '<button type="submit">Sign in</button></form></body></html>';
  return { status: 200, type: 'text/html', body: html };
}

async function readForm(req) {
  const chunks = [];
  for await (const chunk of req) {
    chunks.push(chunk);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

async function login(form) {
  const email = form.get('email') ?? '';
  const query = new URLSearchParams({
    SAMLRequest: form.get('SAMLRequest') ?? '',
    RelayState: form.get('RelayState') ?? '',
    user: email,
    nameId: email.split('@')[0],
  });
  return sso(query);
}

const server = createServer(async (req, res) => {
  try {
    const url = new URL(req.url, baseUrl);
    let out;
    if (req.method === 'GET' && url.pathname === '/idp/sso') {
      out = await sso(url.searchParams, url.search.slice(1));
    } else if (req.method === 'GET' && url.pathname === '/idp/login') {
      out = loginForm(url.searchParams);
    } else if (req.method === 'POST' && url.pathname === '/idp/login') {
      out = await login(await readForm(req));
    } else if (req.method === 'GET' && url.pathname === '/idp/slo') {
      out = await slo(url.searchParams, url.search.slice(1));
    } else if (req.method === 'GET' && url.pathname === '/idp/metadata') {
      out = { status: 200, type: 'application/samlmetadata+xml', body: makeIdp('idp').getMetadata() };
    } else if (req.method === 'GET' && url.pathname === '/health') {
      out = { status: 200, body: 'ok' };
    } else {
      out = { status: 404, body: 'not found' };
    }
    res.writeHead(out.status, { 'content-type': out.type ?? 'text/plain' });
    res.end(out.body);
  } catch (error) {
    console.error(error);
    res.writeHead(500, { 'content-type': 'text/plain' });
    res.end(String(error));
  }
});

server.listen(port, '127.0.0.1', () => {
  const address = server.address();
  baseUrl = `http://127.0.0.1:${address.port}`;
  entityId = entityIdArg || `${baseUrl}/idp/metadata`;
  process.stdout.write(
    JSON.stringify({
      port: address.port,
      entityId,
      ssoUrl: `${baseUrl}/idp/sso`,
      cert: pemBody(keys.idp.cert),
      otherCert: pemBody(keys.other.cert),
      spKey: keys.sp.key,
      spCert: keys.sp.cert,
    }) + '\n',
  );
});
