// Command-line values shared by every command's options.
import { InvalidArgumentError } from 'commander'

/** A parser of whole numbers >= `min`; anything else is a usage error naming the option. */
export const wholeNumber = (min: number) => (value: string) => {
  const n = Number(value)
  if (!(Number.isInteger(n) && n >= min)) throw new InvalidArgumentError(`expected a whole number >= ${min}`)
  return n
}
