// Reads `cargo --message-format=json…` on stdin: prints the compiler's messages (warnings,
// errors) to stderr as cargo would have, and the path of each test binary built to stdout.
let rest = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (chunk) => {
  const lines = (rest + chunk).split('\n');
  rest = lines.pop();
  lines.forEach(handle);
});
process.stdin.on('end', () => handle(rest));

function handle(line) {
  if (!line.startsWith('{')) return;
  const m = JSON.parse(line);
  if (m.reason === 'compiler-message' && m.message.rendered) process.stderr.write(m.message.rendered);
  if (m.reason === 'compiler-artifact' && m.profile?.test && m.executable) console.log(m.executable);
}
