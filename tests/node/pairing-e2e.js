'use strict';
// A full Firefox Accounts device pairing through a channelserver-compatible server,
// driven by the real client library (fxa-pairing-channel@1.0.2, the UMD bundle the
// FxA web content uses):
//   - the creator (Firefox desktop's role, TLS server) and the joiner (the supplicant,
//     TLS client) complete a TLS 1.3 handshake keyed by the pre-shared channel key,
//     with the channel id from the server's first frame as the PSK identity;
//   - one application message each way, each arriving with the sender metadata
//     the server attached (the FxA schema: only string city/country/region/remote/ua);
//   - a clean close on both sides (TLS close_notify both ways, a `close` event each,
//     no `error` event).
// That is 5 handshake + 2 application + 2 close_notify = 9 relayed messages, within
// the default max_exchanges of 10.
//
// Usage: node [--experimental-websocket] pairing-e2e.js ws://127.0.0.1:PORT/
// Prints one JSON line with what was observed; exits 0 on success, 1 with a reason.
// Installs nothing: `npm ci` in this directory provides node_modules.

globalThis.window = globalThis; // the UMD wrapper reads `window`

function fail(reason, detail) {
  process.stdout.write(JSON.stringify({ ok: false, reason, detail: detail === undefined ? null : String(detail) }) + '\n');
  process.exit(1);
}

if (typeof WebSocket === 'undefined') {
  try {
    globalThis.WebSocket = require('ws');
  } catch (_) {
    fail('no WebSocket global: run Node >= 22, or Node 20 with --experimental-websocket');
  }
}

const { PairingChannel } = require('fxa-pairing-channel/dist/FxAccountsPairingChannel.babel.umd.js');

const SENDER_KEYS = ['city', 'country', 'region', 'remote', 'ua'];

/** Resolves with the next event of `type` on `channel`; rejects on an `error` event. */
function next(channel, type, who) {
  return new Promise((resolve, reject) => {
    const onEvent = (event) => {
      channel.removeEventListener('error', onError);
      resolve(event);
    };
    const onError = (event) => {
      channel.removeEventListener(type, onEvent);
      const err = event.detail && event.detail.error;
      reject(new Error(`${who}: error event while waiting for ${type}: ${err && err.message}`));
    };
    channel.addEventListener(type, onEvent, { once: true });
    channel.addEventListener('error', onError, { once: true });
  });
}

function checkSender(sender, who) {
  if (sender === null || typeof sender !== 'object') {
    throw new Error(`${who}: sender is not an object: ${JSON.stringify(sender)}`);
  }
  for (const [key, value] of Object.entries(sender)) {
    if (!SENDER_KEYS.includes(key)) throw new Error(`${who}: unexpected sender key ${key}`);
    if (typeof value !== 'string') throw new Error(`${who}: sender.${key} is not a string`);
  }
  return sender;
}

async function main() {
  const base = process.argv[2];
  if (!base) fail('usage: pairing-e2e.js ws://HOST:PORT/');
  const timer = setTimeout(() => fail('timed out after 30 s'), 30000);

  const creator = await PairingChannel.create(base);
  const channelId = creator.channelId;
  if (typeof channelId !== 'string' || !/^[A-Za-z0-9_-]{22}$/.test(channelId)) {
    throw new Error(`unexpected channel id ${JSON.stringify(channelId)}`);
  }
  const errors = [];
  const joiner = await PairingChannel.connect(base, channelId, creator.channelKey);
  if (joiner.channelId !== channelId) {
    throw new Error(`joiner got channel id ${joiner.channelId}, creator ${channelId}`);
  }

  // The supplicant speaks first, as in FxA; its ClientHello starts the handshake.
  const request = { message: 'pair:supp:request', data: { client_id: 'e2e', state: 'abc123' } };
  const atCreator = next(creator, 'message', 'creator');
  await joiner.send(request);
  const got1 = (await atCreator).detail;
  if (JSON.stringify(got1.data) !== JSON.stringify(request)) {
    throw new Error(`creator received ${JSON.stringify(got1.data)}`);
  }
  checkSender(got1.sender, 'creator');

  const metadata = { message: 'pair:auth:metadata', data: { email: 'e2e@example.com', verificationCode: '123456' } };
  const atJoiner = next(joiner, 'message', 'joiner');
  await creator.send(metadata);
  const got2 = (await atJoiner).detail;
  if (JSON.stringify(got2.data) !== JSON.stringify(metadata)) {
    throw new Error(`joiner received ${JSON.stringify(got2.data)}`);
  }
  checkSender(got2.sender, 'joiner');

  // Clean close: creator first, the joiner answers on seeing the creator's close_notify.
  creator.addEventListener('error', (e) => errors.push(`creator: ${e.detail && e.detail.error && e.detail.error.message}`));
  joiner.addEventListener('error', (e) => errors.push(`joiner: ${e.detail && e.detail.error && e.detail.error.message}`));
  const joinerClosed = next(joiner, 'close', 'joiner');
  const creatorClosed = next(creator, 'close', 'creator');
  await creator.close();
  await joinerClosed;
  await joiner.close();
  await creatorClosed;
  // Let both sockets finish closing, then make sure nothing went wrong afterwards.
  await new Promise((resolve) => setTimeout(resolve, 300));
  if (errors.length > 0) throw new Error(`error events: ${errors.join('; ')}`);

  clearTimeout(timer);
  process.stdout.write(JSON.stringify({
    ok: true,
    channelId,
    creatorReceived: got1,
    joinerReceived: got2,
    closed: { creator: true, joiner: true },
  }) + '\n');
  process.exit(0);
}

main().catch((err) => fail('exception', err && err.stack ? err.stack : err));
