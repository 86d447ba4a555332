import test from 'ava';
import mqtt, { type MqttClient } from 'mqtt';
import { deviceClientId } from '../../protocol/client-ids.ts';
import { silentLogger } from '../../protocol/log.ts';
import { deviceReleaseTopic, deviceStatusTopic } from '../../protocol/messages.ts';
import { startBroker } from '../../server/broker/broker.ts';

/**
 * A phase's notices leave the embedded broker together (issue #10 item 7). With aedes' default
 * delivery concurrency (100) a phase of N devices went out N/100 waves apart, two turns of the
 * event loop each, behind the reports the first devices sent back; the last device heard of the
 * phase many turns late. Counted in turns of the event loop, not in milliseconds, so machine load
 * does not move it. Real broker with Convoy's hooks, real clients with persistent sessions.
 */
test("a phase of 600 devices' retained notices reaches every device within the first turns of the event loop", async (t) => {
  // 600 devices: six waves at aedes' default concurrency (the last notice in turn 11 or so), so a
  // loaded machine splitting the clients' socket reads over a few more turns does not blur the line.
  const count = 600;
  let reports = 0;
  const broker = await startBroker({
    host: '127.0.0.1',
    port: 0,
    authenticate: async (token) => ({ type: 'device', deviceId: token, group: 'fleet' }),
    onMessage: () => void reports++,
    log: silentLogger,
  });
  const clients: MqttClient[] = [];
  try {
    const ids = Array.from({ length: count }, (_, i) => `phase-${i}`);
    const arrivedInTurn = new Map<string, number>();
    let turns = 0;
    let counting = true;
    const countTurn = () => {
      turns++;
      if (counting) setImmediate(countTurn);
    };
    for (let i = 0; i < count; i += 100) {
      clients.push(
        ...(await Promise.all(
          ids.slice(i, i + 100).map(async (id) => {
            const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${broker.port}`, { clientId: deviceClientId(id), username: id, password: id, clean: false, reconnectPeriod: 0 });
            client.on('message', () => {
              if (!arrivedInTurn.has(id)) arrivedInTurn.set(id, turns);
              // As a device starting its update: a report back, while the phase is going out.
              client.publish(deviceStatusTopic(id), JSON.stringify({ type: 'status', deviceId: id, state: 'updating' }), { qos: 1 });
            });
            await client.subscribeAsync(deviceReleaseTopic(id), { qos: 1 });
            return client;
          }),
        )),
      );
    }
    const notice = JSON.stringify({ type: 'release', deploymentId: 1, group: 'fleet', bundle: 'app', version: '1.0.0', issuedAt: new Date().toISOString(), attempt: 0 });
    setImmediate(countTurn);
    // As the deployment service releases a phase: every device's notice at once.
    await Promise.all(ids.map((id) => broker.publish(deviceReleaseTopic(id), notice, true)));
    for (let waited = 0; (arrivedInTurn.size < count || reports < count) && waited < 30_000; waited += 10) await new Promise((r) => setTimeout(r, 10));
    counting = false;
    t.is(arrivedInTurn.size, count, 'every device got its notice');
    t.is(reports, count, "and every device's report reached the server");
    const last = Math.max(...arrivedInTurn.values());
    t.log(`last notice in turn ${last}`);
    t.true(last <= 5, `the last notice arrived in turn ${last} of the event loop (at aedes' default concurrency: turn 11 or so)`);
  } finally {
    await Promise.all(clients.map((c) => c.endAsync(true)));
    await broker.close();
  }
});
