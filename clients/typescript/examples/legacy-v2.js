// legacy-v2.js: a V2 frontend, before the move (legacy path, integer IDs, loose frames).
export function startChat(host, groupNumber, clientNumber, view) {
  let socket;
  const open = () => {
    socket = new WebSocket(`wss://${host}/ws/group/${groupNumber}/client/${clientNumber}`);
    socket.onmessage = (event) => {
      const m = JSON.parse(event.data);
      if (m.type === "msg") view.showMessage(String(m.from), m.msg);
      else if (m.type === "cmd" && m.cmd === "RELOAD_UI") view.reloadHistory("all");
      else if (m.type === "error") view.showNotice(`rejected: ${m.msg}`);
    };
    socket.onclose = () => setTimeout(open, 1000); // the gateway keeps a V2 client's place
  };
  open();
  const ping = setInterval(() => socket.readyState === WebSocket.OPEN && socket.send("ping"), 30000);
  return {
    say: (text) => socket.send(JSON.stringify({ msg: text })),
    whisper: (toNumber, text) => socket.send(JSON.stringify({ msg: text, to: toNumber })),
    stop: () => { clearInterval(ping); socket.onclose = null; socket.close(); },
  };
}
