const socket = new WebSocket("ws://localhost:8765");
socket.onopen = () => {
console.log("Connection established");
socket.send("Hello, Server!");
};
socket.onmessage = (event) => {
console.log("Received message: " + event.data);
};
socket.onclose = (event) => {
if (event.wasClean) {
console.log(`Connection closed cleanly, code=${event.code} reason=${event.reason}`);
} else {
console.log('Connection died');
}
};
