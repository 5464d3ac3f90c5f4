// Microphone capture: an AudioWorklet sending ~100 ms pcm_s16le frames at the native rate, or
// MediaRecorder webm_opus where AudioWorklet is missing.
export async function captureMicrophone({ echoCancellation, noiseSuppression, onChunk, onLevel }) {
  const stream = await navigator.mediaDevices.getUserMedia({
    audio: { echoCancellation, noiseSuppression, autoGainControl: true, channelCount: 1 },
  });
  const stopTracks = () => stream.getTracks().forEach((t) => t.stop());
  if (window.AudioWorkletNode) {
    const context = new AudioContext();
    await context.audioWorklet.addModule('pcm-worklet.js');
    const source = context.createMediaStreamSource(stream);
    const node = new AudioWorkletNode(context, 'pcm-capture', { processorOptions: { frameMs: 100 } });
    node.port.onmessage = (e) => { onChunk(e.data.pcm); onLevel(e.data.level); };
    const mute = context.createGain();
    mute.gain.value = 0;  // the graph must reach the output to be pulled, but must not be heard
    source.connect(node).connect(mute).connect(context.destination);
    return {
      encoding: 'pcm_s16le', sampleRate: context.sampleRate,
      stop() { source.disconnect(); node.disconnect(); context.close(); stopTracks(); },
    };
  }
  const recorder = new MediaRecorder(stream, { mimeType: 'audio/webm;codecs=opus' });
  recorder.ondataavailable = async (e) => { if (e.data.size) onChunk(await e.data.arrayBuffer()); };
  recorder.start(250);
  return {
    encoding: 'webm_opus', sampleRate: 48000,
    stop() { recorder.stop(); stopTracks(); },
  };
}
