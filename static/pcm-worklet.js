// AudioWorklet: microphone float samples → little-endian 16-bit PCM frames of ~100 ms at the context's
// own sample rate (the server resamples with a proper resampler), plus an RMS level for the meter.
class PcmCapture extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const frameMs = (options.processorOptions && options.processorOptions.frameMs) || 100;
    this.frame = new Int16Array(Math.round(sampleRate * frameMs / 1000));
    this.filled = 0;
    this.sumSquares = 0;
  }
  process(inputs) {
    const channel = inputs[0] && inputs[0][0];
    if (!channel) return true;
    for (let i = 0; i < channel.length; i++) {
      const s = Math.max(-1, Math.min(1, channel[i]));
      this.frame[this.filled++] = s < 0 ? s * 0x8000 : s * 0x7fff;
      this.sumSquares += s * s;
      if (this.filled === this.frame.length) {
        const out = new ArrayBuffer(this.frame.length * 2);
        const view = new DataView(out);
        for (let j = 0; j < this.frame.length; j++) view.setInt16(j * 2, this.frame[j], true);
        this.port.postMessage({ pcm: out, level: Math.sqrt(this.sumSquares / this.frame.length) }, [out]);
        this.filled = 0;
        this.sumSquares = 0;
      }
    }
    return true;
  }
}
registerProcessor('pcm-capture', PcmCapture);
