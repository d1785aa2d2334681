/** Progress on stderr: a numbered step per measurement, with its outcome and the time left. */
export class Progress {
  private done = 0
  private readonly started = Date.now()

  constructor(private readonly total: number) {}

  step(what: string): void {
    this.done++
    const elapsed = (Date.now() - this.started) / 1000
    const left =
      this.done > 1 ? ((elapsed / (this.done - 1)) * (this.total - this.done + 1)) / 60 : Number.NaN
    const eta = Number.isFinite(left) ? `, ~${Math.ceil(left)} min left` : ''
    process.stderr.write(`[${this.done}/${this.total}${eta}] ${what}\n`)
  }

  note(text: string): void {
    process.stderr.write(`        ${text}\n`)
  }
}
