// The smallest useful JavaScript plugin: greets the name in its payload.
import { handler, Permanent } from "../sdk-js/taskhost.js";

handler(
  "js.hello",
  (job, payload) => {
    const name = String(payload.name ?? "").trim();
    if (!name) throw new Permanent("name must not be empty");
    return { greeting: `Hello, ${name}!`, attempt: job.attempt };
  },
  { description: "Greets the name in its payload (JavaScript)" },
);
