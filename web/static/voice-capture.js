// AudioWorklet: the microphone as 20 ms pieces of 16-bit PCM, or silence while muted.
class MicrophoneCapture extends AudioWorkletProcessor {
  constructor() {
    super();
    this.size = Math.round(sampleRate / 50);
    this.buffer = new Int16Array(this.size);
    this.filled = 0;
    this.muted = false;
    this.port.onmessage = (event) => {
      if (event.data && typeof event.data.muted === "boolean") this.muted = event.data.muted;
    };
  }

  process(inputs) {
    const channel = inputs[0] && inputs[0][0];
    const frames = channel ? channel.length : 128;
    for (let i = 0; i < frames; i++) {
      let value = 0;
      if (channel && !this.muted) {
        const s = Math.max(-1, Math.min(1, channel[i]));
        value = s < 0 ? s * 0x8000 : s * 0x7fff;
      }
      this.buffer[this.filled++] = value;
      if (this.filled === this.size) {
        this.port.postMessage(this.buffer.buffer, [this.buffer.buffer]);
        this.buffer = new Int16Array(this.size);
        this.filled = 0;
      }
    }
    return true;
  }
}

registerProcessor("microphone-capture", MicrophoneCapture);
