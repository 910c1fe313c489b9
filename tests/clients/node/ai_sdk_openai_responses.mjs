// AI SDK, `openai(model)` as its docs show (the Responses API): key and base
// URL come from the environment only. One call: a one-token text generation.
import { generateText } from "ai";
import { openai } from "@ai-sdk/openai";

const { finishReason } = await generateText({
  model: openai("gpt-4o-mini"),
  prompt: "ping",
  maxOutputTokens: 1,
  maxRetries: 0,
});
console.log(`ok: finish reason ${finishReason}`);
