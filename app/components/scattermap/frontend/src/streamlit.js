// Streamlit's custom-component protocol (components v1), spoken directly: the official
// streamlit-component-lib brings React and Apache Arrow, and this component needs neither (its
// binary arguments arrive as Uint8Array, its values go back as JSON).

function send(type, data) {
  window.parent.postMessage({ isStreamlitMessage: true, type, ...data }, "*");
}

/** Calls `onRender(args, theme)` on every render message; tells Streamlit the frame is ready. */
export function listen(onRender) {
  window.addEventListener("message", (event) => {
    const message = event.data;
    if (message && message.type === "streamlit:render") onRender(message.args || {}, message.theme || null);
  });
  send("streamlit:componentReady", { apiVersion: 1 });
}

export function setFrameHeight(height) {
  send("streamlit:setFrameHeight", { height });
}

/** A JSON value for the Python side (triggers a script rerun). */
export function setComponentValue(value) {
  send("streamlit:setComponentValue", { value, dataType: "json" });
}
