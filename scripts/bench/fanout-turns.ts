/*
 * How a phase's notices leave the embedded broker (issue #10 item 7), in figures that machine
 * load moves little: the turns of the event loop from the phase's publish to the last notice
 * reaching its device, and the CPU used; with the wall-clock latency beside them. N devices on the real embedded broker (server/broker/broker.ts: Convoy's hooks,
 * real MQTT on loopback, clients with persistent sessions as convoyd's); each answers its notice
 * with a status report, as a device starting an update does, and the server's handling of each
 * report costs `--report-ms` of CPU (the parse and the database work the real server does). Run
 * once per delivery concurrency (aedes' `concurrency`, MqttLimits.deliveryConcurrency).
 *
 *   node --import tsx scripts/bench/fanout-turns.ts [--devices 1000] [--report-ms 0.3] [--concurrency 100,5000]
 *
 * Not part of `npm test`.
 */
import { parseArgs } from 'node:util';
import mqtt, { type MqttClient } from 'mqtt';
import { deviceClientId } from '../../protocol/client-ids.ts';
import { silentLogger } from '../../protocol/log.ts';
import { deviceReleaseTopic, deviceStatusTopic } from '../../protocol/messages.ts';
import { startBroker } from '../../server/broker/broker.ts';
import { defaultMqttLimits } from '../../server/broker/limits.ts';

const { values } = parseArgs({ options: { devices: { type: 'string', default: '1000' }, 'report-ms': { type: 'string', default: '0.3' }, concurrency: { type: 'string', default: '100,5000' } } });
const count = Number(values.devices);
const reportMs = Number(values['report-ms']);

function busy(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until);
}

async function run(concurrency: number) {
  let reports = 0;
  const broker = await startBroker({
    host: '127.0.0.1',
    port: 0,
    // Token "id" signs in device "id" of group "fleet": the ACL is the real one.
    authenticate: async (token) => ({ type: 'device', deviceId: token, group: 'fleet' }),
    onMessage: () => {
      reports++;
      busy(reportMs);
    },
    log: silentLogger,
    limits: { ...defaultMqttLimits, deliveryConcurrency: concurrency, statusBurst: 1_000 },
  });
  const ids = Array.from({ length: count }, (_, i) => `turns-${i}`);
  const arrived: { ms: number; turn: number }[] = [];
  // Counts turns of the event loop: an immediate set from an immediate runs in the next turn.
  let turns = 0;
  let counting = false;
  const countTurn = () => {
    turns++;
    if (counting) setImmediate(countTurn);
  };
  let sentAt = 0;
  const clients: MqttClient[] = [];
  for (let i = 0; i < ids.length; i += 100) {
    clients.push(
      ...(await Promise.all(
        ids.slice(i, i + 100).map(async (id) => {
          const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${broker.port}`, { clientId: deviceClientId(id), username: id, password: id, clean: false, reconnectPeriod: 0 });
          client.on('message', () => {
            arrived.push({ ms: performance.now() - sentAt, turn: turns });
            client.publish(deviceStatusTopic(id), JSON.stringify({ type: 'status', deviceId: id, state: 'updating' }), { qos: 1 });
          });
          await client.subscribeAsync(deviceReleaseTopic(id), { qos: 1 });
          return client;
        }),
      )),
    );
  }
  const payload = JSON.stringify({ type: 'release', deploymentId: 1, group: 'fleet', bundle: 'fleet', version: '1.0.0', issuedAt: new Date().toISOString(), attempt: 0 });
  const cpu = process.cpuUsage();
  sentAt = performance.now();
  counting = true;
  setImmediate(countTurn);
  // As the deployment service releases a phase: every notice at once, retained, QoS 1.
  await Promise.all(ids.map((id) => broker.publish(deviceReleaseTopic(id), payload, true)));
  while (arrived.length < count || reports < count) await new Promise((r) => setTimeout(r, 10));
  const used = process.cpuUsage(cpu);
  counting = false;
  await Promise.all(clients.map((c) => c.endAsync(true)));
  await broker.close();
  const sorted = arrived.map((a) => a.ms).sort((a, b) => a - b);
  const p99 = sorted[Math.ceil(0.99 * sorted.length) - 1]!;
  const last = arrived.reduce((a, b) => (b.ms > a.ms ? b : a));
  return { concurrency, p50: sorted[Math.floor(sorted.length / 2)]!, p99, lastTurn: last.turn, cpuS: (used.user + used.system) / 1e6 };
}

for (const concurrency of values.concurrency.split(',').map(Number)) {
  const r = await run(concurrency);
  process.stdout.write(
    `${count} devices, delivery concurrency ${String(r.concurrency).padStart(5)}: publish → notice p50 ${r.p50.toFixed(0)} ms, p99 ${r.p99.toFixed(0)} ms; ` +
      `the last notice arrived in event-loop turn ${r.lastTurn}; CPU ${r.cpuS.toFixed(2)} s (notices and the ${count} reports)\n`,
  );
}
