// AI SDK, one provider package whose factory takes the base URL only as an
// option (none of these reads one from the environment; the bag's warning
// says so): the key comes from the environment, the base URL from the last
// argument, as the warning's note says. One call: a one-token text
// generation through the provider's `languageModel`. Arguments: package,
// factory, model id, base URL.
import { generateText } from "ai";

const [pkg, factory, modelId, baseURL] = process.argv.slice(2);
const provider = (await import(pkg))[factory]({ baseURL });
const { finishReason } = await generateText({
  model: provider.languageModel(modelId),
  prompt: "ping",
  maxOutputTokens: 1,
  maxRetries: 0,
});
console.log(`ok: ${pkg} ${factory}, finish reason ${finishReason}`);
