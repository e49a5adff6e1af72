// Validates an AsyncAPI document with the official parser and fails on any
// error-level diagnostic; warnings are printed.
import { readFileSync } from "node:fs";
import { Parser } from "@asyncapi/parser";

const file = process.argv[2] ?? "../../schemas/asyncapi.yaml";
const parser = new Parser();
const { document, diagnostics } = await parser.parse(readFileSync(file, "utf8"), { source: file });
const errors = diagnostics.filter((d) => d.severity === 0);
for (const d of diagnostics) {
  const level = ["error", "warning", "info", "hint"][d.severity] ?? d.severity;
  console.log(`${level}: ${d.code}: ${d.message} at ${d.path.join(".")}`);
}
if (errors.length > 0 || !document) {
  console.error(`${file}: ${errors.length} errors: not a valid AsyncAPI document`);
  process.exit(1);
}
console.log(`${file}: valid AsyncAPI ${document.version()}: ${document.channels().length} channels, ${document.operations().length} operations, ${document.components().messages().length} messages`);
