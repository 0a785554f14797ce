// Starts the fauxqs SQS/SNS emulator on loopback only and prints one JSON line
// {"url": "http://127.0.0.1:PORT"} on stdout once it accepts requests.
//
// fauxqs's own starter (and startFauxqs) listen on every interface; an
// emulator accepts any credentials, so it must not be reachable from outside.
// Usage: node start.mjs [PORT]   (0 or nothing: a free port)
// Stops on SIGTERM/SIGINT, and when stdin closes (the parent process went away).
import { buildApp } from "fauxqs";

const port = Number.parseInt(process.argv[2] ?? "0", 10);
const app = buildApp({ logger: false, host: "127.0.0.1" });
const address = await app.listen({ port, host: "127.0.0.1" });
process.stdout.write(`${JSON.stringify({ url: address })}\n`);

let stopping = false;
async function stop() {
  if (stopping) return;
  stopping = true;
  await app.close();
  process.exit(0);
}
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
process.stdin.on("end", stop);
process.stdin.on("close", stop);
process.stdin.resume();
