// BullMQ as a Ferrite tenant (tests/clients.rs): a queue, a worker and the
// queue's event stream, connected with the tenant's credentials only.
// Usage: node tenant.js <port> <tenant> <password>
const { Queue, Worker, QueueEvents } = require('bullmq');

const [port, username, password] = process.argv.slice(2);
const connection = { host: '127.0.0.1', port: Number(port), username, password, maxRetriesPerRequest: null };
const sleep = ms => new Promise(r => setTimeout(r, ms));

async function main() {
  const queue = new Queue('jobs', { connection });
  const events = new QueueEvents('jobs', { connection });
  await events.waitUntilReady();
  let completedEvents = 0;
  events.on('completed', () => { completedEvents += 1; });
  const worker = new Worker('jobs', async job => {
    if (job.data.fail) throw new Error('boom');
    return job.data.n * 2;
  }, { connection, concurrency: 4 });
  worker.on('error', err => console.log('worker error', err.message));

  const first = await queue.add('double', { n: 21 });
  for (let i = 0; i < 19; i++) await queue.add('double', { n: i });
  await queue.add('later', { n: 100 }, { delay: 300 });
  await queue.add('urgent', { n: 7 }, { priority: 3 });
  await queue.addBulk([{ name: 'b1', data: { n: 1 } }, { name: 'b2', data: { n: 2 } }]);
  await queue.add('bad', { fail: true }, { attempts: 2, backoff: { type: 'fixed', delay: 50 } });

  const deadline = Date.now() + 15000;
  let counts;
  while (Date.now() < deadline) {
    counts = await queue.getJobCounts();
    if (counts.completed >= 24 && counts.failed >= 1 && completedEvents >= 24) break;
    await sleep(50);
  }
  console.log(`completed ${counts.completed} failed ${counts.failed} waiting ${counts.waiting} delayed ${counts.delayed}`);
  console.log(`events ${completedEvents}`);
  const job = await queue.getJob(first.id);
  console.log(`result ${job.returnvalue}`);
  const bad = (await queue.getFailed())[0];
  console.log(`attempts ${bad.attemptsMade} reason ${bad.failedReason}`);

  await queue.pause();
  await queue.add('held', { n: 5 });
  await sleep(200);
  console.log(`paused waiting ${(await queue.getJobCounts()).paused}`);
  await queue.resume();
  while (Date.now() < deadline && (await queue.getJobCounts()).completed < 25) await sleep(50);
  console.log(`resumed completed ${(await queue.getJobCounts()).completed}`);

  await worker.close();
  await queue.obliterate({ force: true });
  console.log(`obliterated ${Object.values(await queue.getJobCounts()).reduce((a, b) => a + b, 0)}`);
  await events.close();
  await queue.close();
}

main().then(() => process.exit(0), err => { console.log('error', err && err.stack || err); process.exit(1); });
