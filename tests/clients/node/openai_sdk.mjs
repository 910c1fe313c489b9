// OpenAI TypeScript SDK, `new OpenAI()` as its README shows: key and base
// URL come from the environment only. One cheap call: list the models.
import OpenAI from "openai";

const client = new OpenAI({ maxRetries: 0 });
const models = await client.models.list();
console.log(`ok: ${models.data.length} models`);
