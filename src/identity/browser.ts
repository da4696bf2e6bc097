import {spawn} from 'node:child_process'

/** Opens `url` in a browser; resolves false when that was not possible. */
export type BrowserOpener = (url: string) => Promise<boolean>

/**
 * The platform opener, or undefined where opening a browser cannot help: a Linux/BSD session with
 * neither X11 nor Wayland (SSH, containers) would only make xdg-open print errors or start a text
 * browser inside our terminal.
 */
export function defaultBrowserOpener(env: NodeJS.ProcessEnv = process.env, platform: NodeJS.Platform = process.platform): BrowserOpener | undefined {
  let command: string
  let args: (url: string) => string[]
  if (platform === 'darwin') {
    command = 'open'
    args = (url) => [url]
  } else if (platform === 'win32') {
    // `start` would need a shell, which would interpret `&` in the URL.
    command = 'rundll32'
    args = (url) => ['url.dll,FileProtocolHandler', url]
  } else if (env.DISPLAY || env.WAYLAND_DISPLAY) {
    command = 'xdg-open'
    args = (url) => [url]
  } else {
    return undefined
  }
  return (url) =>
    new Promise((resolve) => {
      const child = spawn(command, args(url), {stdio: 'ignore', detached: true})
      child.once('error', () => resolve(false))
      child.once('spawn', () => {
        child.unref()
        resolve(true)
      })
    })
}
