// Streamlit's custom-component protocol (components v1), spoken directly: the official
// streamlit-component-lib brings React and Apache Arrow, and this component needs neither (its
// binary arguments arrive as Uint8Array, its values go back as JSON).

function send(type, data) {
  window.parent.postMessage({ isStreamlitMessage: true, type, ...data }, "*");
}

/** Calls `onRender(args, theme)` on every render message; tells Streamlit the frame is ready, again
 * every 250 ms until the first render arrives: Streamlit starts listening to a frame in an effect
 * that can run after a cached frame has already said "ready" (the map then stayed hidden for a
 * minute, until Streamlit's load timeout). A repeated "ready" only makes it render again. */
export function listen(onRender) {
  let rendered = false;
  window.addEventListener("message", (event) => {
    const message = event.data;
    if (message && message.type === "streamlit:render") {
      rendered = true;
      onRender(message.args || {}, message.theme || null);
    }
  });
  let tries = 0;
  const ready = () => {
    if (rendered || tries++ > 240) return;
    send("streamlit:componentReady", { apiVersion: 1 });
    setTimeout(ready, 250);
  };
  ready();
}

export function setFrameHeight(height) {
  send("streamlit:setFrameHeight", { height });
}

/** A JSON value for the Python side (triggers a script rerun). */
export function setComponentValue(value) {
  send("streamlit:setComponentValue", { value, dataType: "json" });
}
