/** Stands for a value that exists only once `beforeAll` has run, so a describe block can name it up front. */
export function later<T extends object>(get: () => T | undefined, what: string): T {
  return new Proxy({} as T, {
    get(_, key) {
      const value = get()
      if (!value) throw new Error(`${what} is used before beforeAll opened it`)
      return Reflect.get(value, key)
    },
    // So that `{...db}` copies the database's fields.
    ownKeys: () => Reflect.ownKeys(get() ?? {}),
    getOwnPropertyDescriptor: (_, key) => {
      const d = Reflect.getOwnPropertyDescriptor(get() ?? {}, key)
      return d && {...d, configurable: true}
    },
  })
}
