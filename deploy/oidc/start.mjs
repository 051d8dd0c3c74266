// Container entry point for the OpenID provider fixture (tests/support/oidc/provider.mjs).
//
// provider.mjs listens on 127.0.0.1 only, on purpose: it is a test fixture. Docker publishes ports
// to a container's external interface, never to its loopback, so a published port could not
// reach it. This file starts a plain TCP relay on 0.0.0.0:RELAY_PORT that forwards every
// connection byte for byte (Host header included) to 127.0.0.1:PORT, then runs the provider
// unchanged. ISSUER names the relay's port, e.g. http://127.0.0.1:9090 with RELAY_PORT=9090 and
// PORT=9091.
//
// Environment: RELAY_PORT, plus what provider.mjs reads (PORT, ISSUER, CONFIG).

import net from 'node:net';

function fail(message) {
  process.stderr.write(`oidc relay: ${message}\n`);
  process.exit(2);
}

function port(name) {
  const value = Number.parseInt(process.env[name] ?? '', 10);
  if (!Number.isInteger(value) || value <= 0 || value > 65535) fail(`${name} must be a TCP port number`);
  return value;
}

const relayPort = port('RELAY_PORT');
const providerPort = port('PORT');
if (relayPort === providerPort) fail('RELAY_PORT and PORT must differ (the provider holds 127.0.0.1:PORT)');

const relay = net.createServer((client) => {
  const provider = net.connect({ host: '127.0.0.1', port: providerPort });
  const closeBoth = () => {
    client.destroy();
    provider.destroy();
  };
  client.on('error', closeBoth);
  provider.on('error', closeBoth);
  client.on('close', closeBoth);
  provider.on('close', closeBoth);
  client.pipe(provider);
  provider.pipe(client);
});
relay.on('error', (err) => fail(`listen on 0.0.0.0:${relayPort} failed: ${err.message}`));
relay.listen(relayPort, '0.0.0.0', () => {
  process.stdout.write(`oidc relay: 0.0.0.0:${relayPort} -> 127.0.0.1:${providerPort}\n`);
});

// The provider reads its environment when imported and handles SIGTERM/SIGINT (exits the process,
// relay included).
await import('./provider.mjs');
