// The js-hello plugin's component entry: its handlers and the SDK's exports.
import "./hello.js";
export { handlers, run } from "../sdk-js/taskhost.js";
