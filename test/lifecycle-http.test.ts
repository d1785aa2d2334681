import t from 'tap'
import { lifecycleSuite } from './helpers/lifecycle-suite.js'

lifecycleSuite(t, { transport: 'http' })
